"""Budgets and plan checks end to end: a scripted model, the real local sandbox, real pytest.

Each plan asks for something that cannot be carried out; the run refuses it,
tells the model (the next diagnosis sees the refusal), carries out the rest
and goes on, and the thread can still be resumed from any checkpoint.
"""

from __future__ import annotations

import uuid
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from devlooper import Context, ReplayChatModel, budgets, builder
from devlooper.loops import restore_best
from devlooper.sandboxes.pool import release_all
from tests.integration.test_loop import ADDER_PLAN, BAD, FIX, GOOD, TESTS

LONG_NAME = "a" * 300 + ".py"


class Script:
    """Scripted replies that remember each prompt and count the calls per key."""

    def __init__(self, **replies: Any) -> None:
        self.prompts: dict[str, str] = {}
        self.calls: dict[str, int] = {}
        self.replies: dict[str, Any] = {
            "plan_project": ADDER_PLAN,
            "generate_file:adder.py": BAD,
            "generate_file:tests/test_adder.py": TESTS,
        }
        for key, reply in replies.items():
            self.on(key, reply)

    def on(self, key: str, reply: Any) -> Script:
        def answer(messages):
            self.prompts[key] = messages[-1].content
            self.calls[key] = self.calls.get(key, 0) + 1
            return reply(messages) if callable(reply) else reply

        self.replies[key] = answer
        return self


async def run(script: Script, **context: Any) -> tuple[Any, dict, dict]:
    """The whole graph with a checkpointer; (graph, config, final values)."""
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    model = ReplayChatModel.from_replies(script.replies)
    try:
        await graph.ainvoke({"prompt": "a tiny library"}, config, context=Context(chat_model=model, **context))
    finally:
        await release_all()
    return graph, config, (await graph.aget_state(config)).values


def refusals(state: dict, iteration: int) -> dict[str, str]:
    return {r["target"]: r["output"] for r in state["action_results"] if r["iteration"] == iteration and not r["ok"]}


async def test_a_plan_of_500_actions_is_bounded_and_the_rest_fed_back():
    fixes = [{"kind": "fix_file", "path": f"notes/n{i}.txt", "instructions": "write a note"} for i in range(499)]
    huge = {"summary": "everything at once", "actions": [*fixes, FIX["actions"][0]]}  # the real fix comes last
    script = Script(**{"diagnose:1": "add subtracts", "diagnose:2": "add subtracts", "plan:1": huge, "plan:2": FIX})
    script.on("fix_file:1:*", "note\n")
    script.replies["fix_file:2:adder.py"] = GOOD
    _, _, state = await run(script)
    assert state["status"] == "passed" and state["iteration"] == 3
    assert script.calls["fix_file:1:*"] == budgets.MAX_PLAN_ACTIONS  # 20 model calls, not 500
    assert len(state["plans"][0]["actions"]) == budgets.MAX_PLAN_ACTIONS  # the state holds what ran
    [refused] = [r for r in state["action_results"] if r["kind"] == "plan"]
    assert "500 actions" in refused["output"] and refused["iteration"] == 1
    assert "500 actions" in script.prompts["diagnose:2"] and "MAX_PLAN_ACTIONS" in script.prompts["diagnose:2"]


async def test_two_fixes_of_one_file_are_one_call_with_both_instructions():
    plan = {
        "summary": "fix add",
        "actions": [
            {"kind": "fix_file", "path": "adder.py", "instructions": "use + instead of -"},
            {"kind": "fix_file", "path": "adder.py", "instructions": "keep the signature add(a, b)"},
        ],
    }
    script = Script(**{"diagnose:1": "add subtracts", "plan:1": plan, "fix_file:1:adder.py": GOOD})
    _, _, state = await run(script)
    assert state["status"] == "passed" and script.calls["fix_file:1:adder.py"] == 1
    prompt = script.prompts["fix_file:1:adder.py"]
    assert "use + instead of -" in prompt and "keep the signature add(a, b)" in prompt
    [edit] = state["edits"]
    assert "use + instead of -" in edit["reason"] and "keep the signature" in edit["reason"]
    [result] = [r for r in state["action_results"] if r["kind"] == "fix"]
    assert "2 fix_file actions on this path were merged" in result["output"]


async def test_impossible_paths_are_refused_the_run_goes_on_and_resumes():
    plan1 = {
        "summary": "restructure",
        "actions": [
            {"kind": "fix_file", "path": "adder.py/__init__.py", "instructions": "a package"},  # adder.py is a file
            {"kind": "fix_file", "path": "tests", "instructions": "one file"},  # tests is a directory
            {"kind": "fix_file", "path": LONG_NAME, "instructions": "too long a name"},
            {"kind": "fix_file", "path": "helpers.py", "instructions": "a helper"},  # this one is fine
        ],
    }
    script = Script(**{"diagnose:1": "add subtracts", "diagnose:2": "add subtracts", "plan:1": plan1, "plan:2": FIX})
    script.on("fix_file:1:*", "HELP = 1\n")
    script.replies["fix_file:2:adder.py"] = GOOD
    graph, config, state = await run(script)
    assert state["status"] == "passed" and state["iteration"] == 3
    refused = refusals(state, 1)
    assert set(refused) == {"adder.py/__init__.py", "tests", LONG_NAME}
    assert "adder.py is a file" in refused["adder.py/__init__.py"] and "tests is a directory" in refused["tests"]
    assert state["files"]["helpers.py"] == "HELP = 1\n"  # the rest of the plan ran
    seen = script.prompts["diagnose:2"]
    assert "adder.py is a file; adder.py/__init__.py needs it to be a directory" in seen
    assert "a name may hold 255" in seen
    # Resume from the checkpoint right after that plan was applied, in a fresh sandbox.
    history = [s async for s in graph.aget_state_history(config)]
    after_apply = next(s for s in history if s.next == ("test",) and s.values["iteration"] == 1)
    resumed = await graph.ainvoke(
        None, after_apply.config, context=Context(chat_model=ReplayChatModel.from_replies(script.replies))
    )
    await release_all()
    assert resumed["status"] == "passed"


async def test_a_20_mb_file_from_the_model_is_refused():
    big = "x = 1\n" * 3_500_000  # 21 MB
    script = Script(**{"diagnose:1": "add subtracts", "diagnose:2": "add subtracts", "plan:1": FIX, "plan:2": FIX})
    script.replies["fix_file:1:adder.py"] = big
    script.replies["fix_file:2:adder.py"] = GOOD
    script.replies["generate_file:notes.txt"] = big
    script.replies["plan_project"] = {**ADDER_PLAN, "files": [*ADDER_PLAN["files"], {"path": "notes.txt", "purpose": "notes"}]}
    _, _, state = await run(script)
    assert state["status"] == "passed" and state["iteration"] == 3
    assert "notes.txt" not in state["files"]  # generation refused it
    assert "a file may hold" in refusals(state, 0)["notes.txt"]
    assert "a file may hold" in refusals(state, 1)["adder.py"]
    assert not [e for e in state["edits"] if e["iteration"] == 1]  # adder.py unchanged at iteration 1
    assert "a file may hold" in script.prompts["diagnose:1"]  # generation's refusal, in the history
    assert "a file may hold" in script.prompts["diagnose:2"]


async def test_the_best_run_is_restored_as_it_was():
    worse = "def add(a, b):\n    return a + b + 1\n"  # 0 passed
    plans = {
        "summary": "more",
        "actions": [
            {"kind": "fix_file", "path": "adder.py", "instructions": "change"},
            {"kind": "fix_file", "path": "extra.py", "instructions": "add a module"},
        ],
    }
    script = Script(**{"diagnose:*": "add is wrong", "plan:*": plans})
    script.replies["generate_file:adder.py"] = worse  # run 1: 0 passed
    script.replies["fix_file:1:adder.py"] = "def add(a, b):\n    return a * b\n"  # run 2: 1 passed, the best
    script.replies["fix_file:2:adder.py"] = worse  # runs 3 and 4: 0 passed
    script.replies["fix_file:3:adder.py"] = worse.replace("1", "2")
    for i in (1, 2, 3):
        script.replies[f"fix_file:{i}:extra.py"] = f"N = {i}\n"
    graph, config, state = await run(script, max_iterations=4, loop_window=9)
    assert state["best"]["iteration"] == 2
    history = [s async for s in graph.aget_state_history(config)]
    at_best = next(s for s in history if s.next == ("diagnose",) and s.values["iteration"] == 2).values
    before_finish = next(s for s in history if s.next == ("finish",)).values
    files, layers = restore_best(before_finish)
    assert files == at_best["files"] and layers == at_best["layers"]
    # The checkpoint holds the best run's differing files only, not a second copy of the project.
    stored = {p for p, c in before_finish["best"]["files"].items() if c is not None}
    assert stored == {p for p in files if before_finish["files"].get(p) != files[p]} == {"adder.py", "extra.py"}


async def test_a_file_cannot_replace_a_directory_emptied_earlier():
    plan = {**ADDER_PLAN, "files": [*ADDER_PLAN["files"], {"path": "pkg/helper.py", "purpose": "a helper"}]}
    drop = {"summary": "drop the helper", "actions": [{"kind": "delete_file", "path": "pkg/helper.py"}]}
    replace = {
        "summary": "a flat helper and fix add",
        "actions": [{"kind": "fix_file", "path": "pkg", "instructions": "a file now"}, FIX["actions"][0]],
    }
    script = Script(**{"diagnose:1": "add subtracts", "diagnose:2": "add subtracts", "plan:1": drop, "plan:2": replace})
    script.replies.update({"plan_project": plan, "generate_file:pkg/helper.py": "H = 1\n", "fix_file:2:*": GOOD})
    _, _, state = await run(script)
    assert state["status"] == "passed" and state["iteration"] == 3
    assert "pkg is a directory" in refusals(state, 2)["pkg"] and "pkg" not in state["files"]
