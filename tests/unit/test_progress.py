"""The CLI's views of a run, fed the events a run streams."""

from __future__ import annotations

import io
import json

from rich.console import Console

from devlooper.progress import JsonView, LiveView, QuietView

LONG = "The tests fail because add() subtracts its arguments instead of adding them, " * 3


def piped() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=80, force_terminal=False, highlight=False), out


def test_piped_output_is_plain_lines_never_wrapped():
    console, out = piped()
    view = LiveView(console)
    with view:
        view.update("diagnose", {"event": {"node": "diagnose", "iteration": 1, "diagnosis": LONG.strip()}})
        view.update("plan", {"event": {"node": "plan", "iteration": 1, "summary": LONG.strip(), "actions": []}})
    lines = out.getvalue().splitlines()
    assert view.live is None  # no spinner where nobody watches
    assert len(lines) == 2, lines
    assert LONG.strip()[:150] in lines[0]  # one line, cut only where the view cuts it
    assert lines[1].rstrip().endswith("(0 actions)") and "\x1b[" not in out.getvalue()


def test_a_test_run_line_names_the_failing_tests():
    console, out = piped()
    view = LiveView(console)
    failing = [{"name": "tests/test_adder.py::test_add", "message": "assert -1 == 5"}]
    event = {"node": "test", "iteration": 1, "exit_code": 1, "passed": 1, "failed": 1, "duration": 0.4,
             "timed_out": False, "failing": failing}
    view.update("test", {"iteration": 1, "event": event})
    text = out.getvalue()
    assert "#1 red (exit 1) · 1 passed, 1 failed" in text and "tests/test_adder.py::test_add" in text
    assert view.counts == (1, 1) and view.iteration == 1


def test_the_status_line_shows_the_model_call_waited_for_and_the_tokens():
    console, _ = piped()
    view = LiveView(console, max_iterations=5)
    view.custom({"event": "step_start", "node": "diagnose", "iteration": 2})
    view.custom({"event": "model_start", "key": "diagnose:2", "step": "diagnose"})
    status = _render(view)
    assert "diagnose" in status and "model: diagnose:2" in status and "iteration 0/5" in status
    view.custom({"event": "model_end", "key": "diagnose:2", "ok": True, "seconds": 1.0,
                 "input_tokens": 1200, "output_tokens": 30, "calls": 1})
    assert "tokens 1,200 in / 30 out · 1 model calls" in _render(view)


def _render(view: LiveView) -> str:
    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    console.print(view)
    return console.file.getvalue()


def test_verbose_shows_the_whole_diagnosis_and_the_diff():
    console, out = piped()
    view = LiveView(console, verbose=True)
    view.update("diagnose", {"event": {"node": "diagnose", "diagnosis": "first line\nsecond line"}})
    edit = {"path": "adder.py", "change": "edited", "added": 1, "removed": 1,
            "diff": "--- a/adder.py\n+++ b/adder.py\n-    return a - b\n+    return a + b\n"}
    view.update("apply", {"event": {"node": "apply", "edits": [edit], "actions": []}})
    text = out.getvalue()
    assert "second line" in text and "+    return a + b" in text and "edited adder.py (+1 -1)" in text


def test_json_events_are_the_servers_updates_one_per_line():
    out = io.StringIO()
    view = JsonView(out)
    view.start("t1")
    view.custom({"event": "model_start", "key": "diagnose:1"})
    view.update("diagnose", {"diagnosis": "x" * 10, "usage": {"calls": 1}, "event": {"node": "diagnose"}})
    view.result({"thread_id": "t1", "status": "passed", "reason": "ok", "iteration": 2}, None)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["metadata", "custom", "updates", "result"]
    # Filtered to the output schema's keys, as a LangGraph server filters updates.
    assert events[2]["data"] == {"diagnose": {"event": {"node": "diagnose"}}}


def test_quiet_prints_one_line(capsys):
    QuietView().result({"thread_id": "t1", "status": "gave_up", "reason": "tests still fail"}, None)
    assert capsys.readouterr().out.splitlines() == ["gave_up: tests still fail · thread t1"]


def test_a_warning_event_is_printed_where_the_run_is_followed():
    console, out = piped()
    view = LiveView(console)
    view.custom({"event": "warning", "about": "embeddings",
                 "message": "embedding model failed (ConnectError: [refused]); code ranked by BM25 alone"})
    assert "warning: embedding model failed (ConnectError: [refused]); code ranked by BM25 alone" in out.getvalue()
