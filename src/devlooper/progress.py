"""One line per node, so a person can follow a run as it happens."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape


class Progress:
    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, node: str, update: dict[str, Any]) -> None:
        text = getattr(self, f"_{node}", None)
        if text is not None:
            self.console.print(f"[bold cyan]{node:>9}[/] {text(update)}")

    @staticmethod
    def _env(update: dict[str, Any]) -> str:
        parts = []
        for r in update.get("action_results", []):
            if r["kind"] in ("install", "command"):
                mark = "[green]ok[/]" if r["ok"] else f"[red]failed (exit {r['exit_code']})[/]"
                parts.append(f"{r['kind']} {escape(r['target'])}: {mark}")
        return ("; " + "; ".join(parts)) if parts else ""

    def _generate(self, u: dict[str, Any]) -> str:
        files = u.get("project", {}).get("files", [])
        return f"wrote {len(files)} files" + self._env(u)

    def _test(self, u: dict[str, Any]) -> str:
        run = u["test_runs"][-1]
        verdict = "[green]green[/]" if run["exit_code"] == 0 else f"[red]red (exit {run['exit_code']})[/]"
        counts = f" · {run['passed']} passed, {run['failed']} failed" if run["passed"] or run["failed"] else ""
        late = " · timed out" if run["timed_out"] else ""
        return f"#{run['iteration']} {verdict}{counts}{late} · {run['duration']:.1f}s"

    def _diagnose(self, u: dict[str, Any]) -> str:
        first = (u.get("diagnosis") or "").strip().splitlines()[:1] or [""]
        line = first[0]
        return escape(line if len(line) <= 100 else line[:99] + "…") + self._loop(u)

    @staticmethod
    def _loop(u: dict[str, Any]) -> str:
        events = u.get("loop_events") or []
        details = [d["detail"] for e in events for d in e["detections"]]
        return f"\n{'':>9} [yellow]loop, model warned:[/] {escape('; '.join(details))}" if details else ""

    def _escalate(self, u: dict[str, Any]) -> str:
        event = (u.get("loop_events") or [{}])[-1]
        if event.get("rung") == "asked":
            return f"[yellow]guidance:[/] {escape(event['guidance'][:160])}"
        return "[red]still looping after a warning; stopping[/]"

    def _plan(self, u: dict[str, Any]) -> str:
        plan = u["plans"][-1]
        n = len(plan["actions"])
        return escape(f"{plan['summary']} ({n} action{'s' if n != 1 else ''})")

    def _apply(self, u: dict[str, Any]) -> str:
        edits = [f"{'deleted' if e['after'] is None else 'edited'} {e['path']}" for e in u.get("edits", [])]
        return escape(", ".join(edits) or "no file changed") + self._env(u)

    def _finish(self, u: dict[str, Any]) -> str:
        color = "green" if u["status"] == "passed" else "red"
        return f"[{color}]{u['status']}[/]: {escape(u['reason'])}"
