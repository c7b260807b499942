from types import SimpleNamespace

import pytest

from devlooper import Context, route_after_test


def _state(*exit_codes: int) -> dict:
    runs = [{"exit_code": code, "iteration": i + 1} for i, code in enumerate(exit_codes)]
    return {"test_runs": runs, "iteration": len(runs)}


def _runtime(**context) -> SimpleNamespace:
    return SimpleNamespace(context=Context(**context))


def test_green_goes_to_finish():
    assert route_after_test(_state(1, 0), _runtime()) == "finish"


def test_red_within_budget_goes_to_diagnose():
    assert route_after_test(_state(1, 1), _runtime(max_iterations=3)) == "diagnose"


def test_red_at_budget_goes_to_finish():
    assert route_after_test(_state(1, 1, 1), _runtime(max_iterations=3)) == "finish"


@pytest.mark.parametrize("context", [None, {"max_iterations": 2}])
def test_context_may_be_missing_or_a_dict(context):
    # The server may pass no context, or a plain dict.
    expected = "finish" if context else "diagnose"
    assert route_after_test(_state(1, 1), SimpleNamespace(context=context)) == expected


def _looping(warned_at: int | None, *, runs: int = 4) -> dict:
    """Runs with the same failure on different code; optionally a warning at one iteration."""
    fps = [
        {"iteration": i, "signature": "S", "workspace": f"W{i}", "layers": "L", "plan": None if i == 1 else f"p{i}",
         "patch": None, "steps": [], "exit_code": 1, "passed": 1, "failed": 1}
        for i in range(1, runs + 1)
    ]
    state = _state(*[1] * runs)
    state["fingerprints"] = fps
    state["loop_events"] = (
        [{"iteration": warned_at, "rung": "warned", "detections": [], "guidance": None}] if warned_at else []
    )
    return state


def test_a_first_loop_goes_to_diagnose_which_warns():
    assert route_after_test(_looping(None, runs=3), _runtime()) == "diagnose"


def test_still_looping_after_a_warning_escalates():
    assert route_after_test(_looping(3), _runtime()) == "escalate"


def test_the_budget_wins_over_escalation():
    assert route_after_test(_looping(3), _runtime(max_iterations=4)) == "finish"


def test_the_loop_window_is_configurable():
    # With K=5 the same failure four times is not yet a loop, so no rung was taken.
    assert route_after_test(_looping(3), _runtime(loop_window=5)) == "diagnose"
