"""Writing a finished project to disk."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError
from .paths import resolve_inside

REPORT = ".devlooper/report.json"
REPORT_HTML = ".devlooper/report.html"


def check_output_dir(path: str | Path, force: bool) -> Path:
    """Refuse a non-empty directory unless ``force``: a run must never clobber work."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"output directory {out} is not empty; choose another --output or pass --force")
    return out


def existing_files(path: str | Path, limit: int = 10_000) -> list[str]:
    """Files already in an output directory (relative, sorted; at most ``limit``)."""
    out = Path(path).expanduser()
    if not out.is_dir():
        return []
    found = []
    for p in sorted(out.rglob("*")):
        if p.is_file() or p.is_symlink():
            found.append(p.relative_to(out).as_posix())
            if len(found) >= limit:
                break
    return found


def write_output(
    path: str | Path, files: dict[str, str], report: dict, render_html: Callable[[dict], str] | None = None
) -> Path:
    """Write the project's files and its report (and its page, rendered by ``render_html``).
    Existing files are overwritten, none deleted; the report's ``output.replaced`` names
    the files that were there before."""
    out = Path(path).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    replaced = sorted(rel for rel in files if (out / rel).is_file())
    report.setdefault("output", {})["replaced"] = replaced
    for rel, content in files.items():
        target = resolve_inside(out, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    write_report((out / REPORT).parent, report, render_html)
    return out


def write_report(directory: Path, report: dict, render_html: Callable[[dict], str] | None = None) -> Path:
    """``report.json`` and, given a renderer, ``report.html`` in ``directory``; the page's path
    (or the JSON's)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if render_html is None:
        return directory / "report.json"
    page = directory / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    return page
