"""Loop memory end to end: scripted models that loop, the real sandbox and real pytest.

Each scenario checks that the loop is detected within K (= 3) runs of its start,
that the prompts show the history and the warning, and that the run stops at
the run after the warning.

A loop begins at the first test run that repeats something: the run after a
plan that changed nothing or a repeated install, the run that returns to an
earlier state, or the first run that does not pass more tests than the best
before it (K such runs in a row are a loop, so that one is seen at its K-th run).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from devlooper import Context, ReplayChatModel, builder, graph
from devlooper.sandboxes.pool import release_all
from tests.conftest import run_scripted
from tests.integration.test_loop import ADDER_PLAN, BAD, GOOD, TESTS, declaring

TIMES = "def add(a, b):\n    return a * b\n"  # 1 passed: add(0, 0) == 0 still holds
POWER = "def add(a, b):\n    return a ** b\n"
DOUBLE = "def add(a, b):\n    return 2 * a\n"
OFF_BY = "def add(a, b):\n    return a + b + {n}\n"  # 0 passed


def fix(instructions: str) -> dict:
    return {"summary": instructions, "actions": [{"kind": "fix_file", "path": "adder.py", "instructions": instructions}]}


class Script:
    """Scripted replies per call key that remember the prompt each call got."""

    def __init__(self, first: str = BAD) -> None:
        self.prompts: dict[str, str] = {}
        self.replies: dict[str, Any] = {
            "plan_project": ADDER_PLAN,
            "generate_file:adder.py": first,
            "generate_file:tests/test_adder.py": TESTS,
        }

    def on(self, key: str, reply: Any) -> Script:
        def answer(messages):
            self.prompts[key] = messages[-1].content
            return reply

        self.replies[key] = answer
        return self

    def iterations(self, n: int, *, plan, fixes=None, diagnosis: str = "add is wrong") -> Script:
        """Replies for iterations 1..n: ``plan(i)``, and ``fixes(i)`` as adder.py's new content."""
        for i in range(1, n + 1):
            self.on(f"diagnose:{i}", diagnosis).on(f"plan:{i}", plan(i))
            if fixes:
                self.replies[f"fix_file:{i}:adder.py"] = fixes(i)
        return self


def events(state: dict) -> list[tuple[int, str, list[str]]]:
    return [(e["iteration"], e["rung"], sorted(d["kind"] for d in e["detections"])) for e in state.get("loop_events", [])]


def assert_stopped_as_stuck(state: dict, *, loop_start: int, warned_at: int) -> None:
    assert state["status"] == "stuck"
    assert warned_at - loop_start < 3, "detected within K iterations of its start"
    assert state["iteration"] == warned_at + 1, "a warning, then a stop"
    rungs = [(it, rung) for it, rung, _ in events(state)]
    assert rungs == [(warned_at, "warned"), (warned_at + 1, "stopped")]
    assert state["reason"].startswith(f"stuck in a loop at run {warned_at + 1}: ")
    assert f"the model was warned at iteration {warned_at}" in state["reason"]


async def test_a_repeated_patch_is_warned_then_stopped(output_dir: Path):
    script = Script().iterations(6, plan=lambda i: fix("multiply"), fixes=lambda i: TIMES)
    state = await run_scripted(script.replies, output_dir=str(output_dir))
    # Plan 1 changes the code; plan 2, the same plan on that new code, changes nothing, so
    # run 3 is the first of the loop. Plan 3 repeats plan 2 on the same code and environment.
    assert_stopped_as_stuck(state, loop_start=3, warned_at=4)
    assert "repeat" in events(state)[0][2]
    warning = script.prompts["diagnose:4"]
    assert "WARNING: you are going in circles" in warning
    assert "the plan of iteration 3 repeats the plan of iteration 2" in warning
    assert "iteration 1 repeats" not in warning  # plan 1 was applied to other code
    # Plans 2 and 3 edited nothing: no edit is listed as one not to repeat (plan 1's is not in the loop).
    assert "+    return a * b" not in warning.split("WARNING")[1]
    assert "WARNING" in script.prompts["plan:4"] and "WARNING" not in script.prompts["diagnose:3"]
    # Rung 1, always: the history, newest first, in diagnose and in plan.
    history = script.prompts["diagnose:4"].split("What earlier iterations tried")[1]
    assert history.index("iteration 3: multiply") < history.index("iteration 2: multiply")
    assert "iteration 3: multiply -> nothing changed" in script.prompts["plan:4"]
    assert "(same failure as run 3)" in script.prompts["diagnose:4"]
    report = json.loads((output_dir / ".devlooper" / "report.json").read_text())
    assert report["status"] == "stuck" and report["reason"] == state["reason"]
    assert [e["rung"] for e in report["loop"]["events"]] == ["warned", "stopped"]
    assert len(report["loop"]["fingerprints"]) == 5


async def test_an_oscillation_between_two_versions(output_dir: Path):
    versions = {1: TIMES, 2: BAD, 3: TIMES, 4: BAD, 5: TIMES}
    script = Script().iterations(5, plan=lambda i: fix(f"attempt {i}"), fixes=versions.get)
    state = await run_scripted(script.replies, output_dir=str(output_dir))
    assert_stopped_as_stuck(state, loop_start=3, warned_at=3)  # A -> B -> A: run 3 is back at run 1
    [warned, stopped] = state["loop_events"]
    cycle = next(d for d in warned["detections"] if d["kind"] == "cycle")
    assert cycle["iterations"] == [1, 2, 3]
    assert any(d["kind"] == "cycle" and d["iterations"] == [2, 3, 4] for d in stopped["detections"])
    assert "back to its state at run 1" in script.prompts["diagnose:3"]


async def test_a_plateau_with_different_patches(output_dir: Path):
    versions = {1: TIMES, 2: POWER, 3: DOUBLE, 4: BAD}
    script = Script().iterations(4, plan=lambda i: fix(f"attempt {i}"), fixes=versions.get)
    state = await run_scripted(script.replies, output_dir=str(output_dir))
    # Runs 1-4: a different failure each time (-1, 6, 8, 4 != 5) and always 1 passed.
    signatures = [fp["signature"] for fp in state["fingerprints"]]
    assert len(set(signatures[:4])) == 4
    assert events(state)[0] == (4, "warned", ["no_progress"])
    # Run 2 is the first without progress; runs 2-4 are three of them (run 1 set the best).
    assert_stopped_as_stuck(state, loop_start=2, warned_at=4)
    assert "WARNING" not in script.prompts["diagnose:3"]
    assert "no more tests passed for 3 runs in a row (runs 2-4; best 1 passing)" in script.prompts["diagnose:4"]


async def test_a_failed_install_tried_again_unchanged(tmp_path: Path, output_dir: Path):
    missing = "missing"  # declared in the template, at a path with no wheel: the install fails offline
    install = {"kind": "install", "packages": [missing]}

    def plan(i: int) -> dict:
        # Worded differently each time, with a no-op edit, so only the install repeats.
        return {"summary": f"install, take {i}",
                "actions": [install, {"kind": "fix_file", "path": "adder.py", "instructions": f"tidy {i}"}]}

    script = Script(first="import tinydep\n\n" + GOOD).iterations(4, plan=plan, fixes=lambda i: "import tinydep\n\n" + GOOD)
    template = declaring(tmp_path, missing=tmp_path / "missing-1.0-py3-none-any.whl")
    state = await run_scripted(script.replies, output_dir=str(output_dir), template=template)
    assert "failed_retry" in events(state)[0][2]
    assert_stopped_as_stuck(state, loop_start=3, warned_at=3)
    warning = script.prompts["diagnose:3"]
    assert f"install `{missing}` failed at iteration 1 and was tried again unchanged at iteration 2" in warning
    assert f"iteration 2: install `{missing}` (failed)" in warning  # named among what not to repeat
    assert not state["layers"]


async def test_a_regression_is_told_and_keep_best_writes_the_best_state(output_dir: Path):
    script = Script().iterations(4, plan=lambda i: fix(f"attempt {i}"), fixes=lambda i: OFF_BY.format(n=i))
    state = await run_scripted(script.replies, output_dir=str(output_dir), keep_best=True)
    worse = script.prompts["diagnose:2"]
    assert "The changes of iteration 1 made things worse: 0 tests pass now, 1 passed at run 1." in worse
    assert "The best run so far is run 1 (1 passed, 1 failed)" in worse
    assert "made things worse" in script.prompts["plan:2"]
    assert_stopped_as_stuck(state, loop_start=2, warned_at=4)  # runs 2-4 pass fewer than run 1
    assert state["best"]["iteration"] == 1
    # --keep-best: the output holds run 1's files, marked as failing, not the last ones.
    assert (output_dir / "adder.py").read_text() == BAD
    assert state["files"]["adder.py"] == BAD
    report = json.loads((output_dir / ".devlooper" / "report.json").read_text())
    assert report["output"]["iteration"] == 1 and report["output"]["tests_pass"] is False
    assert report["status"] == "stuck" and "kept run 1 (1 passed, 1 failed)" in report["reason"]
    assert report["loop"]["best"] == {"iteration": 1, "passed": 1, "failed": 1}
    assert (output_dir / "requirements.txt").read_text().startswith("pytest==")


async def test_without_keep_best_the_last_state_is_written(output_dir: Path):
    script = Script().iterations(2, plan=lambda i: fix(f"attempt {i}"), fixes=lambda i: OFF_BY.format(n=i))
    state = await run_scripted(script.replies, output_dir=str(output_dir), max_iterations=2)
    assert state["status"] == "gave_up" and state["best"]["iteration"] == 1
    assert (output_dir / "adder.py").read_text() == OFF_BY.format(n=1)


CALC_TESTS = (
    "from calc import add, mul, sub\n\n\n"
    "def test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_sub():\n    assert sub(5, 3) == 2\n\n\n"
    "def test_mul():\n    assert mul(2, 3) == 6\n"
)
CALC = {
    0: "def add(a, b):\n    return 0\n\n\ndef sub(a, b):\n    return 0\n\n\ndef mul(a, b):\n    return 0\n",
}
CALC[1] = CALC[0].replace("return 0", "return a + b", 1)
CALC[2] = CALC[1].replace("return 0", "return a - b", 1)
CALC[3] = CALC[2].replace("return 0", "return a * b", 1)


async def test_a_run_that_makes_progress_is_never_flagged(output_dir: Path):
    """Progress one test at a time, a failing command re-run after the code it runs changed."""
    check = "python check.py"
    plans = {
        1: {"summary": "fix add, check", "actions": [
            {"kind": "fix_file", "path": "calc.py", "instructions": "fix add"}, {"kind": "command", "command": check}]},
        2: {"summary": "fix sub, write check.py", "actions": [
            {"kind": "fix_file", "path": "calc.py", "instructions": "fix sub"},
            {"kind": "fix_file", "path": "check.py", "instructions": "write it"}, {"kind": "command", "command": check}]},
        3: {"summary": "fix mul", "actions": [{"kind": "fix_file", "path": "calc.py", "instructions": "fix mul"}]},
    }
    script = Script()
    script.replies.update({
        "plan_project": {"notes": "", "files": [{"path": "calc.py", "purpose": "x"},
                                                {"path": "tests/test_calc.py", "purpose": "t"}], "packages": []},
        "generate_file:calc.py": CALC[0],
        "generate_file:tests/test_calc.py": CALC_TESTS,
        "fix_file:2:check.py": "raise SystemExit(1)\n",
    })
    script.iterations(3, plan=plans.get)
    for i in (1, 2, 3):
        script.replies[f"fix_file:{i}:calc.py"] = CALC[i]
    state = await run_scripted(script.replies, output_dir=str(output_dir))
    assert state["status"] == "passed" and state["iteration"] == 4
    assert [r["passed"] for r in state["test_runs"]] == [0, 1, 2, 3]
    checks = [(r["iteration"], r["ok"]) for r in state["action_results"] if r["kind"] == "command"]
    assert checks == [(1, False), (2, False)]  # the same command failed twice, on different code
    assert state["loop_events"] == []
    assert not any("WARNING" in text for text in script.prompts.values())
    assert state["best"]["iteration"] == 4


async def run_interactive(
    replies: dict, *answers: Any, approve_plan: bool = True, **context: Any
) -> tuple[dict, list[dict]]:
    """Like a server client: run, and resume each interrupt with Command(resume=answer).
    With ``approve_plan`` the generation plan's pause is approved without an answer of the test's."""
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    ctx = Context(chat_model=ReplayChatModel.from_replies(replies), interactive=True, **context)
    questions: list[dict] = []
    payload: Any = {"prompt": "a tiny library"}
    pending = list(answers)
    try:
        while True:
            await graph.ainvoke(payload, config, context=ctx)
            snapshot = await graph.aget_state(config)
            if not snapshot.interrupts:
                break
            if approve_plan and snapshot.interrupts[0].value["kind"] == "plan":
                payload = Command(resume="yes")
                continue
            answer = pending.pop(0) if pending else None
            assert answer is not None, "the graph asked more often than the test expected"
            questions.append(snapshot.interrupts[0].value)
            payload = Command(resume=answer)
    finally:
        await release_all()
    return (await graph.aget_state(config)).values, questions


async def test_interactive_guidance_reaches_the_next_prompts_and_gets_out(output_dir: Path):
    script = Script().iterations(4, plan=lambda i: fix("multiply"), fixes=lambda i: TIMES)
    script.on("diagnose:5", "the human says: add").on("plan:5", fix("use + as the human said"))
    script.replies["fix_file:5:adder.py"] = GOOD
    state, questions = await run_interactive(script.replies, "add means a + b, not a * b", output_dir=str(output_dir))
    [question] = questions
    assert question["iteration"] == 5 and "plan of iteration 4 repeats" in question["reason"]
    assert question["passed"] == 1 and question["failed"] == 1
    for key in ("diagnose:5", "plan:5"):
        assert "A human gave this guidance" in script.prompts[key]
        assert "add means a + b, not a * b" in script.prompts[key]
    assert state["status"] == "passed" and state["iteration"] == 6
    assert [(it, rung) for it, rung, _ in events(state)] == [(4, "warned"), (5, "asked")]
    assert state["loop_events"][-1]["guidance"] == "add means a + b, not a * b"


async def test_interactive_stop_or_a_dict_answer(output_dir: Path):
    script = Script().iterations(6, plan=lambda i: fix("multiply"), fixes=lambda i: TIMES)
    state, questions = await run_interactive(
        script.replies, {"guidance": "try harder"}, "stop", output_dir=str(output_dir)
    )
    assert len(questions) == 2 and [q["iteration"] for q in questions] == [5, 6]
    assert "try harder" in script.prompts["diagnose:5"]
    assert state["status"] == "stuck"
    assert [(it, rung) for it, rung, _ in events(state)] == [(4, "warned"), (5, "asked"), (6, "stopped")]
    assert "a human gave guidance at iteration 5" in state["reason"]


async def test_interactive_without_a_checkpointer_stops_instead_of_pausing_forever():
    # The exported graph has no checkpointer (a server brings one): an interrupt
    # there could never be resumed, so the run ends as stuck and says why.
    script = Script().iterations(6, plan=lambda i: fix("multiply"), fixes=lambda i: TIMES)
    try:
        out = await graph.ainvoke(
            {"prompt": "x"}, context=Context(chat_model=ReplayChatModel.from_replies(script.replies), interactive=True)
        )
    finally:
        await release_all()
    assert out["status"] == "stuck" and "needs a checkpointer" in out["reason"]
