"""Following a run in the CLI: a live view, plain lines, JSON events, or nothing.

Every view reads the same events (:mod:`devlooper.events`): the step event in
each node's update and the custom progress events sent while a step runs.

- ``LiveView`` on a terminal: one line per finished step (files written with
  their line counts, the verdict of each test run with its failing tests, the
  diagnosis, the plan, the edits, commands with the tail of a failure's output)
  above a status line with a spinner, the step and what it waits for (a model
  call, a test run) with the elapsed time, the iteration and the budget, the
  last pass/fail counts and the tokens so far. ``verbose`` adds the whole
  diagnosis, the plan's actions and the diffs, highlighted.
- The same view when stderr is not a terminal prints the same lines, plain and
  never wrapped (a log file or a pipe gets one line per line), without spinner.
- ``JsonView`` (``--json``): one JSON object per line on stdout, ``{"event":
  "updates" | "custom", "data": ...}``, the same events ``client.runs.stream``
  gets from a server with ``stream_mode=["updates", "custom"]`` (updates filtered
  to the output keys, as a server filters them); first a ``metadata`` event with
  the thread id, last a ``result`` event.
- ``QuietView`` (``--quiet``): nothing until the one result line.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.syntax import Syntax
from rich.text import Text




@functools.cache
def output_keys() -> frozenset[str]:
    """The keys a server streams of each update (the output schema's). Read on first use:
    the state module brings LangGraph, which commands that run nothing never import."""
    from .state import OutputState  # noqa: PLC0415

    return frozenset(OutputState.__annotations__)
INDENT = " " * 10
TAIL_LINES = 6  # lines of a failed command's output shown under it


class View:
    """What every view does; the base prints nothing."""

    max_iterations: int | None = None  # the run's budget, known once its context is

    def __enter__(self) -> View:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def banner(self, text: str) -> None:
        pass

    def note(self, text: str) -> None:
        """A line beside the result (tokens used, a pause, replaced files): not for --quiet or --json."""

    def start(self, thread_id: str) -> None:
        pass

    def update(self, node: str, update: dict[str, Any]) -> None:
        pass

    def custom(self, payload: dict[str, Any]) -> None:
        pass

    def asking(self, ask: Callable[[dict], str]) -> Callable[[dict], str]:
        """``ask`` wrapped so that a question to a human is not drawn over."""
        return ask

    def result(self, final: dict[str, Any], output: Path | None) -> None:
        pass


class QuietView(View):
    """``--quiet``: only the result, one line on stdout."""

    def result(self, final: dict[str, Any], output: Path | None) -> None:
        where = f" · output {output}" if output else ""
        print(f"{final.get('status')}: {final.get('reason', '')} · thread {final['thread_id']}{where}", flush=True)


class JsonView(View):
    """``--json``: one event per line, the events a server streams."""

    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stdout

    def _emit(self, event: str, data: Any) -> None:
        self.out.write(json.dumps({"event": event, "data": data}, default=str) + "\n")
        self.out.flush()

    def start(self, thread_id: str) -> None:
        self._emit("metadata", {"thread_id": thread_id})

    def update(self, node: str, update: dict[str, Any]) -> None:
        self._emit("updates", {node: {k: v for k, v in update.items() if k in output_keys()}})

    def custom(self, payload: dict[str, Any]) -> None:
        self._emit("custom", payload)

    def result(self, final: dict[str, Any], output: Path | None) -> None:
        keys = ("thread_id", "status", "reason", "iteration")
        self._emit("result", {**{k: final.get(k) for k in keys}, "output": str(output) if output else None})


class LiveView(View):
    """The terminal view: step lines above a live status line (plain lines elsewhere)."""

    def __init__(self, console: Console, *, verbose: bool = False, max_iterations: int | None = None) -> None:
        self.console = console
        self.verbose = verbose
        self.max_iterations = max_iterations
        self.live_status = console.is_terminal and not console.is_dumb_terminal
        self.step = "starting"
        self.waiting: dict[str, float] = {}  # model call key -> when it started
        self.step_started = time.monotonic()
        self.iteration = 0
        self.counts: tuple[int, int] | None = None
        self.usage: dict[str, float] = {}
        self.spinner = Spinner("dots", style="cyan")
        self.live: Live | None = None

    # --- the live status line ---------------------------------------------------
    def __enter__(self) -> LiveView:
        if self.live_status:
            self.live = Live(self, console=self.console, refresh_per_second=8, transient=True)
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def __rich__(self) -> Group:
        now = time.monotonic()
        if self.waiting:
            oldest = min(self.waiting.values())
            keys = sorted(self.waiting)
            what = f"model: {keys[0]}" + (f" (+{len(keys) - 1} more)" if len(keys) > 1 else "")
            elapsed = now - oldest
        else:
            what = {"test": "running the tests", "generate": "setting up", "apply": "applying the plan",
                    "finish": "writing the output"}.get(self.step, "working")
            elapsed = now - self.step_started
        self.spinner.text = Text.from_markup(f"[bold cyan]{self.step}[/] · {escape(what)} · {elapsed:.1f}s")
        return Group(self.spinner, Text(self._stats(), style="dim"))

    def _stats(self) -> str:
        budget = f"/{self.max_iterations}" if self.max_iterations else ""
        parts = [f"iteration {self.iteration}{budget}"]
        if self.counts is not None:
            parts.append(f"{self.counts[0]} passed, {self.counts[1]} failed")
        if self.usage:
            tokens = f"tokens {int(self.usage.get('input_tokens', 0)):,} in / {int(self.usage.get('output_tokens', 0)):,} out"
            parts.append(f"{tokens} · {int(self.usage.get('calls', 0))} model calls")
            cost = sum(v for k, v in self.usage.items() if "cost" in k)
            if cost:
                parts.append(f"${cost:.4f}")
        return " · ".join(parts)

    def asking(self, ask: Callable[[dict], str]) -> Callable[[dict], str]:
        def paused(question: dict) -> str:
            if self.live is not None:
                self.live.stop()
            try:
                return ask(question)
            finally:
                if self.live is not None:
                    self.live.start()

        return paused

    # --- events ------------------------------------------------------------------
    def banner(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)

    def note(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)

    def custom(self, payload: dict[str, Any]) -> None:
        kind = payload.get("event")
        if kind == "step_start":
            self.step, self.step_started = payload["node"], time.monotonic()
            self.waiting.clear()
        elif kind == "model_start":
            self.waiting[payload["key"]] = time.monotonic()
        elif kind == "warning":
            self.note(f"[yellow]warning:[/] {escape(str(payload.get('message', '')))}")
        elif kind == "model_end":
            self.waiting.pop(payload["key"], None)
            for name, value in payload.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in ("seconds",):
                    self.usage[name] = self.usage.get(name, 0) + value

    def update(self, node: str, update: dict[str, Any]) -> None:
        event = update.get("event") or {}
        self.iteration = update.get("iteration", self.iteration)
        render = getattr(self, f"_{node}", None)
        if render is None:
            return
        head, more = render(event, update)
        self._line(node, head)
        for line in more:
            self._line("", line)

    def result(self, final: dict[str, Any], output: Path | None) -> None:
        where = f" · output in [bold]{escape(str(output))}[/]" if output else ""
        self.console.print(f"thread [cyan]{final['thread_id']}[/] · {final.get('status')}{where}", soft_wrap=True)
        if output:
            print(output, flush=True)

    def _line(self, node: str, text: Any) -> None:
        if isinstance(text, str):
            self.console.print(f"[bold cyan]{node:>9}[/] {text}", soft_wrap=True)
        else:  # a renderable (a highlighted diff)
            self.console.print(text)

    # --- one renderer per step: (first line, further lines) -----------------------
    def _actions(self, event: dict) -> list[str]:
        lines = []
        for r in event.get("actions") or []:
            if r["kind"] in ("fix", "delete") and r["ok"]:
                continue  # shown as edits
            if r["ok"]:
                lines.append(f"{r['kind']} {escape(r['target'])}: [green]ok[/] ({r['duration']:.1f}s)")
                continue
            code = f"exit {r['exit_code']}" if r["exit_code"] is not None else "refused"
            lines.append(f"{r['kind']} {escape(r['target'])}: [red]failed ({code})[/]")
            tail = (r.get("output") or "").splitlines()[-TAIL_LINES:]
            lines += [f"  [dim]{escape(t)}[/]" for t in tail]
        return lines

    def _generate(self, event: dict, update: dict) -> tuple[str, list]:
        files = event.get("files") or []
        listed = ", ".join(f"{escape(f['path'])} ({f['lines']} lines)" for f in files)
        return f"wrote {len(files)} files: {listed}", self._actions(event)

    def _test(self, event: dict, update: dict) -> tuple[str, list]:
        self.counts = (event.get("passed", 0), event.get("failed", 0))
        code = event.get("exit_code")
        verdict = "[green]green[/]" if code == 0 else f"[red]red (exit {code})[/]"
        counts = f" · {event['passed']} passed, {event['failed']} failed" if event.get("passed") or event.get("failed") else ""
        late = " · timed out" if event.get("timed_out") else ""
        head = f"#{event.get('iteration')} {verdict}{counts}{late} · {event.get('duration', 0):.1f}s"
        more = [f"[red]✗[/] {escape(f['name'])}" for f in event.get("failing") or []]
        if code != 0 and not more:  # nothing parsed: the end of the output says why
            more = [f"  [dim]{escape(t)}[/]" for t in (event.get("tail") or "").splitlines()[-TAIL_LINES:]]
        return head, more

    def _diagnose(self, event: dict, update: dict) -> tuple[str, list]:
        text = (event.get("diagnosis") or "").strip()
        lines = text.splitlines() or [""]
        if self.verbose:
            head, more = escape(lines[0]), [escape(line) for line in lines[1:]]
        else:
            first = lines[0]
            head, more = escape(first if len(first) <= 160 else first[:159] + "…"), []
        if event.get("loop_warning"):
            more.append(f"[yellow]loop, model warned:[/] {escape('; '.join(event['loop_warning']))}")
        return head, more

    def _plan(self, event: dict, update: dict) -> tuple[str, list]:
        actions = event.get("actions") or []
        n = len(actions)
        head = escape(f"{event.get('summary', '')} ({n} action{'s' if n != 1 else ''})")
        more = []
        if self.verbose:
            more = [f"· {a['kind']} {escape(a['target'])}" + (f": {escape(a['instructions'])}" if a.get("instructions") else "")
                    for a in actions]
        return head, more + self._actions({"actions": event.get("refused") or []})

    def _apply(self, event: dict, update: dict) -> tuple[str, list]:
        edits = event.get("edits") or []
        described = []
        for e in edits:
            counts = f" (+{e['added']} -{e['removed']})" if e.get("added") is not None else ""
            described.append(f"{e['change']} {escape(e['path'])}{counts}")
        more: list[Any] = self._actions(event)
        if self.verbose:
            more += [Syntax(e["diff"], "diff", theme="ansi_dark", background_color="default") for e in edits if e.get("diff")]
        return ", ".join(described) or "no file changed", more

    def _escalate(self, event: dict, update: dict) -> tuple[str, list]:
        last = (update.get("loop_events") or [{}])[-1]
        if last.get("rung") == "asked":
            return f"[yellow]guidance:[/] {escape(last['guidance'][:160])}", []
        return "[red]still looping after a warning; stopping[/]", []

    def _finish(self, event: dict, update: dict) -> tuple[str, list]:
        self.waiting.clear()
        color = "green" if update.get("status") == "passed" else "red"
        return f"[{color}]{update.get('status')}[/]: {escape(update.get('reason', ''))}", []


def view_for(mode: str | None, console: Console, *, max_iterations: int | None = None) -> View:
    """The view for an output mode: ``json``, ``quiet``, ``verbose`` or None (the default)."""
    if mode == "json":
        return JsonView()
    if mode == "quiet":
        return QuietView()
    return LiveView(console, verbose=mode == "verbose", max_iterations=max_iterations)
