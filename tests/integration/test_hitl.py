"""Pauses for a person, scripted like a server client (Command(resume=...)): the generation
plan approved, edited and rejected; a command refused, with the refusal reaching the next
plan; the command policy without a person; a paused thread resumed with no context at all
continues with the settings it started with. The real local sandbox and pytest."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from devlooper import Context, ReplayChatModel, builder
from devlooper.sandboxes.pool import release_all
from tests.conftest import run_scripted
from tests.integration.test_loop import ADDER_PLAN, BAD, FIX, GOOD
from tests.integration.test_loop_memory import Script


async def drive(context: Any, answers: list[Any], payload: Any = None) -> tuple[dict, list[dict]]:
    """Run a thread and answer each pause from ``answers``; return the state and the questions."""
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    payload = payload or {"prompt": "a tiny library"}
    questions: list[dict] = []
    pending = list(answers)
    try:
        while True:
            await graph.ainvoke(payload, config, context=context)
            snapshot = await graph.aget_state(config)
            if not snapshot.interrupts:
                break
            questions.append(snapshot.interrupts[0].value)
            assert pending, f"asked more than scripted: {questions[-1]}"
            payload = Command(resume=pending.pop(0))
    finally:
        await release_all()
    return (await graph.aget_state(config)).values, questions


def interactive(script: Script, **more: Any) -> Context:
    return Context(chat_model=ReplayChatModel.from_replies(script.replies), interactive=True, **more)


async def test_an_approved_plan_is_written_and_the_decision_recorded(output_dir: Path):
    script = Script(first=GOOD)
    state, questions = await drive(interactive(script, output_dir=str(output_dir)), ["yes"])
    assert [q["kind"] for q in questions] == ["plan"]
    assert [f["path"] for f in questions[0]["plan"]["files"]] == ["adder.py", "tests/test_adder.py"]
    assert state["status"] == "passed" and (output_dir / "adder.py").read_text() == GOOD
    assert [(d["moment"], d["verdict"], d["by"]) for d in state["decisions"]] == [("plan", "approved", "person")]


async def test_an_edited_plan_replaces_the_models_and_an_invalid_edit_is_asked_again(output_dir: Path):
    script = Script(first=GOOD).on("generate_file:adder.py", GOOD)
    edited = {**ADDER_PLAN, "files": [{"path": "adder.py", "purpose": "add() as a + b, no classes"},
                                      ADDER_PLAN["files"][1]]}
    invalid = {"action": "edit", "plan": {"notes": "x", "files": []}}
    state, questions = await drive(interactive(script, output_dir=str(output_dir)),
                                   [invalid, {"action": "edit", "plan": edited, "guidance": "keep it flat"}])
    assert [q["kind"] for q in questions] == ["plan", "plan"]
    assert "files" in questions[1]["problem"]  # said why the first edit was not a plan
    assert "add() as a + b, no classes" in script.prompts["generate_file:adder.py"]
    assert "keep it flat" in script.prompts["generate_file:adder.py"]  # guidance reaches the next model call
    assert state["project"]["files"][0]["purpose"] == "add() as a + b, no classes"
    assert [d["verdict"] for d in state["decisions"]] == ["edited"]


async def test_a_rejected_plan_is_asked_for_again_with_the_guidance(output_dir: Path):
    script = Script(first=GOOD).on("plan_project:2", ADDER_PLAN)
    state, questions = await drive(interactive(script, output_dir=str(output_dir)),
                                   ["put add in its own module, adder.py", ""])
    assert [q["kind"] for q in questions] == ["plan", "plan"]
    assert "put add in its own module, adder.py" in script.prompts["plan_project:2"]
    assert [d["verdict"] for d in state["decisions"]] == ["rejected", "approved"]
    assert state["status"] == "passed"


REGEN = {"summary": "regenerate the tests", "actions": [{"kind": "command", "command": "rm -rf tests"}]}


async def test_a_refused_command_is_not_run_and_the_refusal_reaches_the_next_plan(output_dir: Path):
    script = Script(first=BAD).on("diagnose:1", "add is wrong").on("plan:1", REGEN)
    script.on("diagnose:2", "add is wrong").on("plan:2", FIX)
    script.replies["fix_file:2:adder.py"] = GOOD
    state, questions = await drive(interactive(script, output_dir=str(output_dir)),
                                   ["", "the tests are right; fix adder.py instead"])
    assert [q["kind"] for q in questions] == ["plan", "command"]
    assert questions[1]["command"] == "rm -rf tests" and questions[1]["iteration"] == 1
    [result] = [r for r in state["action_results"] if r["kind"] == "command"]
    assert result["ok"] is False and result["exit_code"] is None
    assert "a person refused it: the tests are right; fix adder.py instead" in result["output"]
    assert (output_dir / "tests" / "test_adder.py").exists()  # never ran
    for key in ("diagnose:2", "plan:2"):
        assert "rm -rf tests" in script.prompts[key] and "fix adder.py instead" in script.prompts[key]
    assert state["status"] == "passed"


async def test_without_a_person_the_policy_decides_and_the_allow_list_runs(output_dir: Path):
    plan = {"summary": "try things", "actions": [
        {"kind": "command", "command": "python -c 'open(\"made.txt\", \"w\").write(\"1\")'"},
        {"kind": "command", "command": "touch denied.txt"},
        {"kind": "fix_file", "path": "adder.py", "instructions": "use +"},
    ]}
    replies = {**Script(first=BAD).replies, "diagnose:1": "add is wrong", "plan:1": plan, "fix_file:1:adder.py": GOOD}
    state = await run_scripted(replies, commands="deny", allow_commands=["python -c"], output_dir=str(output_dir))
    results = {r["target"]: r for r in state["action_results"] if r["kind"] == "command"}
    assert results["touch denied.txt"]["ok"] is False and "--commands deny" in results["touch denied.txt"]["output"]
    assert [r["ok"] for t, r in results.items() if t.startswith("python -c")] == [True]
    assert "made.txt" in state["files"] and "denied.txt" not in state["files"]
    assert state["status"] == "passed"


async def test_a_paused_thread_resumed_with_no_context_keeps_its_settings(tmp_path: Path):
    from tests.integration.test_cli_loop import cassette

    out = tmp_path / "out"
    model = cassette(tmp_path, **{"generate_file:adder.py": BAD, "plan:1": FIX, "fix_file:1:adder.py": GOOD})
    started = Context(model=model, interactive=True, output_dir=str(out), max_iterations=3)
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "settings"}}
    try:
        await graph.ainvoke({"prompt": "a tiny library"}, config, context=started)
        assert (await graph.aget_state(config)).interrupts[0].value["kind"] == "plan"
        # Like a server client: only Command(resume=...), no context; the model, the
        # output directory and interactive come from the thread, not from defaults.
        await graph.ainvoke(Command(resume="yes"), config)
    finally:
        await release_all()
    state = (await graph.aget_state(config)).values
    assert state["settings"]["max_iterations"] == 3 and state["settings"]["interactive"] is True
    assert state["status"] == "passed" and (out / "adder.py").read_text() == GOOD
    report = json.loads((out / ".devlooper" / "report.json").read_text())
    assert report["model"] == model
