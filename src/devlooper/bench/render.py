"""A bench's results for people: a text table (per task and in total) and a
self-contained HTML page, rendered with the run report's Jinja2 environment."""

from __future__ import annotations

from typing import Any

from ..report.jinja import environment
from .compare import Comparison
from .results import BenchResults, TaskResult, Totals

VERDICT_LABELS = {
    "accepted": "accepted",
    "hidden_tests_fail": "own tests pass, hidden fail",
    "failed": "failed",
    "error": "error",
}


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _tokens(t: TaskResult | Totals) -> str:
    return f"{t.input_tokens + t.output_tokens:,}"


def table(results: BenchResults) -> str:
    """Plain text, one line per task, then the totals and how the runs ended."""
    rows = [("task", "template", "verdict", "ended", "iter", "seconds", "tokens", "cost")]
    for t in results.tasks:
        rows.append((t.name, t.template, VERDICT_LABELS[t.verdict], t.status or "error", str(t.iterations),
                     f"{t.wall_seconds:.1f}", _tokens(t), _cost(t.cost_usd)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i < 4 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    s = results.totals
    endings = ", ".join(f"{k} {v}" for k, v in s.endings.items()) or "-"
    lines += [
        "",
        f"{results.mode} · model {results.model} · sandbox {results.sandbox} · suite {results.suite}",
        f"accepted {s.accepted}/{s.tasks} ({s.pass_rate:.0%}) · own tests pass but hidden fail {s.hidden_tests_fail}"
        f" · errors {s.errors} · mean iterations {s.iterations_mean:.2f} · {s.wall_seconds:.1f} s"
        f" · {s.input_tokens + s.output_tokens:,} tokens · cost {_cost(s.cost_usd)}",
        f"runs ended: {endings}",
    ]
    return "\n".join(lines)


def html(results: BenchResults) -> str:
    return environment().get_template("bench.html.j2").render(r=results, labels=VERDICT_LABELS)


def comparison_table(c: Comparison) -> str:
    rows = [("task", f"A: {c.a_label}", f"B: {c.b_label}", "change", "iter A→B", "tokens A→B")]
    for d in c.tasks:
        rows.append((d.name, VERDICT_LABELS.get(d.a, "-") if d.a else "-", VERDICT_LABELS.get(d.b, "-") if d.b else "-",
                     d.change, _arrow(d.iterations), _arrow(d.tokens)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [
        "",
        f"pass rate A {c.a_rate:.0%} ({c.a_accepted}/{c.common}) · B {c.b_rate:.0%} ({c.b_accepted}/{c.common}) "
        f"on the {c.common} task(s) both ran · fixed {c.fixed} · broken {c.broken}",
    ]
    if c.only_a or c.only_b:
        lines.append(f"only in A: {', '.join(c.only_a) or '-'} · only in B: {', '.join(c.only_b) or '-'}")
    return "\n".join(lines)


def _arrow(pair: tuple[Any, Any]) -> str:
    a, b = pair
    return f"{'-' if a is None else a}→{'-' if b is None else b}"
