"""What loop memory adds to the prompts: history, a loop warning, a human's guidance; all bounded."""

from devlooper import prompts
from devlooper.loops import detect
from devlooper.memory import make_edit
from devlooper.prompts.history import render_history, render_loop_warning, render_notes
from devlooper.templates import get_template

A, B = "def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a * b\n"


def _fp(i, sig, ws, plan=None):
    return {"iteration": i, "signature": sig, "workspace": ws, "layers": "L", "plan": plan, "patch": None,
            "steps": [], "exit_code": 1, "passed": 1, "failed": 1}


def _run(i, output="boom"):
    return {"iteration": i, "exit_code": 1, "timed_out": False, "output": output, "dropped": 0, "duration": 0.1,
            "passed": 1, "failed": 1, "failures": [{"name": "tests/test_a.py::test_add", "message": "assert 6 == 5"}]}


def oscillating() -> dict:
    """A -> B -> A: iteration 1 wrote B, iteration 2 went back to A."""
    return {
        "prompt": "adder", "iteration": 3, "diagnosis": "add is wrong", "files": {"adder.py": A},
        "test_runs": [_run(1), _run(2), _run(3)],
        "fingerprints": [_fp(1, "S1", "A"), _fp(2, "S2", "B", "p1"), _fp(3, "S1", "A", "p2")],
        "plans": [{"iteration": 1, "summary": "multiply", "actions": []}, {"iteration": 2, "summary": "subtract", "actions": []}],
        "edits": [make_edit(1, "adder.py", A, B, "multiply"), make_edit(2, "adder.py", B, A, "subtract")],
        "action_results": [], "loop_events": [],
    }


def test_history_marks_a_failure_seen_before():
    text = render_history(oscillating())
    assert text.splitlines()[0].startswith("- iteration 2: subtract -> edited adder.py (+1 -1)")
    assert text.splitlines()[0].endswith("(same failure as run 1)")
    assert "same failure" not in text.splitlines()[1]


def test_history_is_bounded_newest_first():
    state = oscillating()
    state["plans"] = [{"iteration": i, "summary": f"attempt {i} " + "x" * 200, "actions": []} for i in range(1, 60)]
    text = render_history(state, budget=2_000)
    assert len(text) < 2_400 and text.startswith("- iteration 59") and "older iterations omitted" in text


def test_the_warning_names_the_loop_and_the_edits_not_to_repeat():
    state = oscillating()
    detections = detect(state["fingerprints"])
    # Three runs at one passing test are not yet three runs without progress: none came before them.
    assert [d["kind"] for d in detections] == ["cycle"]
    text = render_loop_warning(state, detections)
    assert text.startswith("WARNING: you are going in circles")
    assert "back to its state at run 1 (runs 1 -> 2 -> 3)" in text
    assert "- iteration 2: edited adder.py (+1 -1)" in text and "-    return a * b" in text
    assert text.index("iteration 2:") < text.index("iteration 1:")  # newest first
    assert "Take a different approach" in text


def test_the_warning_is_bounded():
    state = oscillating()
    state["edits"] = [make_edit(i % 2 + 1, f"f{i}.py", None, "x\n" * 500, "big") for i in range(200)]
    text = render_loop_warning(state, detect(state["fingerprints"]))
    assert len(text) < 5_000 and "more changes omitted" in text


def test_no_notes_when_nothing_is_wrong():
    state = oscillating()
    assert render_notes(state, [], None) == ""
    text = prompts.diagnose(state, get_template("python"), 2_000, "")[-1].content
    assert "WARNING" not in text and "guidance" not in text


def test_guidance_and_warning_reach_diagnose_and_plan():
    state = oscillating()
    state["loop_events"] = [{"iteration": 3, "rung": "asked", "detections": [], "guidance": "use a + b"}]
    notes = render_notes(state, detect(state["fingerprints"]), "The changes of iteration 2 made things worse.")
    for messages in (
        prompts.diagnose(state, get_template("python"), 2_000, notes),
        prompts.plan_fix(state, get_template("python"), "", notes),
    ):
        text = messages[-1].content
        assert "made things worse" in text and "WARNING: you are going in circles" in text
        assert "A human gave this guidance" in text and "use a + b" in text
        assert "iteration 2: subtract" in text  # the history, in both
