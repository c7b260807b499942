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
