"""``report.html``: a run's report as one self-contained page.

Rendered with Jinja2 from ``templates/report.html.j2`` (autoescaped: the
prompt, the diagnosis and test output are text, never markup), diffs highlighted
by Pygments with inline styles, the chart drawn as inline SVG. The page loads
nothing: no scripts, fonts, stylesheets or images from anywhere, so it opens
offline and from an archive.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

from .jinja import environment

CHART_HEIGHT = 160
BAR_WIDTH = 36
BAR_GAP = 18


def _diff_html(text: str) -> Markup:
    # Pygments escapes the diff's text itself; its output is markup.
    return Markup(highlight(text, DiffLexer(), HtmlFormatter(noclasses=True, nowrap=True, style="default")))


def _env() -> Environment:
    env = environment()
    env.filters.setdefault("diff", _diff_html)
    return env


def chart(iterations: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars of passing (bottom) and failing (top) tests per test run, in SVG units."""
    runs = [(it["iteration"], it["test"]) for it in iterations if it.get("test")]
    most = max([t["passed"] + t["failed"] for _, t in runs] + [1])
    bars = []
    for i, (iteration, t) in enumerate(runs):
        passed_h = CHART_HEIGHT * t["passed"] / most
        failed_h = CHART_HEIGHT * t["failed"] / most
        bars.append({
            "x": 40 + i * (BAR_WIDTH + BAR_GAP), "iteration": iteration, "passed": t["passed"], "failed": t["failed"],
            "passed_y": 10 + CHART_HEIGHT - passed_h, "passed_h": passed_h,
            "failed_y": 10 + CHART_HEIGHT - passed_h - failed_h, "failed_h": failed_h,
            "green": t["exit_code"] == 0, "no_counts": not (t["passed"] or t["failed"]),
        })
    width = 40 + max(len(runs), 1) * (BAR_WIDTH + BAR_GAP) + 20
    return {"bars": bars, "most": most, "width": width, "height": CHART_HEIGHT + 40, "base": 10 + CHART_HEIGHT,
            "bar_width": BAR_WIDTH}


def render_html(report: dict[str, Any]) -> str:
    iterations = report.get("timeline") or []
    return _env().get_template("report.html.j2").render(r=report, iterations=iterations, chart=chart(iterations))
