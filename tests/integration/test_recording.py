"""--record through the whole graph: a session whose structured replies needed retries replays the same."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver

from devlooper import Context, ReplayChatModel, builder
from devlooper.sandboxes.pool import release_all
from tests.integration.test_loop import BAD, FIX, GOOD, replies

ESCAPE = {"summary": "escape", "actions": [{"kind": "fix_file", "path": "../outside.py", "instructions": "x"}]}


async def run(context: Context) -> dict:
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    try:
        await graph.ainvoke({"prompt": "a tiny library"}, config, context=context)
    finally:
        await release_all()
    return (await graph.aget_state(config)).values


def outcome(state: dict) -> dict:
    return {
        "status": state["status"], "iteration": state["iteration"], "files": state["files"],
        "plans": state["plans"], "usage": state["usage"],
        "results": [(r["iteration"], r["kind"], r["ok"], r["output"]) for r in state["action_results"] if r["kind"] != "fix"],
        "signatures": [fp["signature"] for fp in state["fingerprints"]],
    }


async def test_a_recorded_session_with_retries_and_a_plan_that_never_validated_replays_the_same(tmp_path: Path):
    script = replies(BAD, **{
        "diagnose:*": "add subtracts",
        "plan:1*": ESCAPE,  # all three attempts invalid: no plan at iteration 1
        "plan:2": "I would fix adder.py so that it adds.",  # words, not the structured reply
        "plan:2#retry1": FIX,
        "fix_file:2:adder.py": GOOD,
    })
    cassette = tmp_path / "session.json"
    recorded = await run(Context(chat_model=ReplayChatModel.from_replies(script), record=str(cassette)))
    assert recorded["status"] == "passed" and recorded["iteration"] == 3
    assert [(r["iteration"], r["ok"]) for r in recorded["action_results"] if r["kind"] == "plan"] == [(1, False)]
    keys = [c["key"] for c in json.loads(cassette.read_text())["calls"]]
    assert [k for k in keys if k.startswith("plan:")] == ["plan:1", "plan:1#retry1", "plan:1#retry2", "plan:2", "plan:2#retry1"]

    replayed = await run(Context(model=f"replay:{cassette}"))
    assert outcome(replayed) == outcome(recorded)
