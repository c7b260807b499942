"""Step events: what each step did, bounded, in every update a watcher gets."""

from __future__ import annotations

from devlooper import events
from devlooper.errors import ConfigError


def run(iteration: int, passed: int, failed: int, output: str = "", n_failures: int = 0) -> dict:
    return {
        "iteration": iteration, "exit_code": 0 if not failed else 1, "timed_out": False, "output": output,
        "dropped": 0, "duration": 0.5, "passed": passed, "failed": failed,
        "failures": [{"name": f"tests/test_x.py::test_{i}", "message": "E" * 5000} for i in range(n_failures)],
    }


def test_a_test_event_names_the_failing_tests_and_stays_small():
    update = {"iteration": 1, "test_runs": [run(1, 3, 40, output="x" * 200_000, n_failures=40)]}
    event = events.step_event("test", {}, update, 1.25)
    assert event["node"] == "test" and event["iteration"] == 1 and (event["passed"], event["failed"]) == (3, 40)
    assert event["failing"][0]["name"] == "tests/test_x.py::test_0"
    assert len(event["failing"]) == events.FAILING_NAMES
    assert all(len(f["message"]) < events.FAILURE_CHARS + 100 for f in event["failing"])
    assert len(event["tail"]) <= events.TAIL_CHARS + 1
    assert len(str(event)) < 20_000  # never the whole output


def test_a_green_run_has_no_tail():
    event = events.step_event("test", {}, {"iteration": 2, "test_runs": [run(2, 5, 0, output="ok")]}, 0.1)
    assert "tail" not in event and event["failing"] == []


def test_diagnosis_plan_and_apply_events_carry_what_happened():
    diagnosis = events.step_event("diagnose", {"iteration": 1}, {"diagnosis": "add subtracts\nmore", "usage": {"calls": 1}}, 0.2)
    assert diagnosis["diagnosis"] == "add subtracts\nmore" and diagnosis["usage"] == {"calls": 1}
    plan = {"iteration": 1, "summary": "use +", "actions": [{"kind": "fix_file", "path": "adder.py", "instructions": "use +"}]}
    planned = events.step_event("plan", {"iteration": 1}, {"plans": [plan]}, 0.1)
    assert planned["summary"] == "use +" and planned["actions"] == [{"kind": "fix_file", "target": "adder.py", "instructions": "use +"}]
    edit = {"iteration": 1, "path": "adder.py", "before": "a", "after": "b", "diff": "-x\n+y\n" * 5000, "reason": "", "added": 1, "removed": 1}
    failed = {"iteration": 1, "kind": "command", "target": "make", "ok": False, "exit_code": 2, "output": "boom\n" * 1000, "duration": 1.0}
    applied = events.step_event("apply", {"iteration": 1}, {"files": {"adder.py": "b\n"}, "edits": [edit], "action_results": [failed]}, 0.3)
    assert applied["edits"][0]["change"] == "edited" and len(applied["edits"][0]["diff"]) < events.DIFF_CHARS + 100
    assert applied["actions"][0]["ok"] is False and applied["actions"][0]["output"].endswith("boom")
    assert len(applied["actions"][0]["output"]) <= events.TAIL_CHARS + 1
    assert applied["lines"] == {"adder.py": 1}


def test_emit_outside_a_running_graph_does_nothing():
    events.emit({"event": "model_start", "key": "diagnose:1"})  # no graph, no writer: no error


def test_devlooper_errors_are_types_whose_message_a_server_shows():
    # langgraph_api's serde passes the message of a ValueError, RuntimeError or TimeoutError
    # (among a few) to the client and replaces any other's with "An internal error occurred".
    from devlooper.sandboxes.base import SandboxError, SandboxStartupError, SandboxTimeoutError

    assert issubclass(ConfigError, ValueError)
    assert issubclass(SandboxError, RuntimeError) and issubclass(SandboxStartupError, RuntimeError)
    assert issubclass(SandboxTimeoutError, TimeoutError)
    # (Importing langgraph_api here would make this process look like a server:
    # tests/integration/test_server.py checks the message a client gets.)


def test_the_missing_key_message_names_no_cli_flag_for_a_server_client(monkeypatch):
    from devlooper import models, server_root

    monkeypatch.setattr(server_root, "must_confine", lambda: True)
    served = models.missing_key_message()
    assert "OPENAI_API_KEY" in served and "--" not in served and "base_url" in served
    monkeypatch.setattr(server_root, "must_confine", lambda: False)
    assert "--base-url" in models.missing_key_message()
