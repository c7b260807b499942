"""A run that stops on an error frees its sandbox at once: a server process lives on."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from devlooper import Context, ReplayChatModel, builder
from devlooper.sandboxes import pool

PROJECT = {"notes": "an adder", "files": [{"path": "adder.py", "purpose": "add"},
                                          {"path": "tests/test_adder.py", "purpose": "tests"}]}


def broken_model(messages):
    raise RuntimeError("the model server went away")


async def test_an_error_in_a_node_releases_the_runs_sandbox():
    model = ReplayChatModel.from_replies({
        "plan_project": PROJECT,
        "generate_file:adder.py": "def add(a, b):\n    return a - b\n",
        "generate_file:tests/test_adder.py": "from adder import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
        "diagnose:1": broken_model,
    })
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    with pytest.raises(RuntimeError, match="went away"):
        await graph.ainvoke({"prompt": "an adder"}, config, context=Context(chat_model=model))
    state = (await graph.aget_state(config)).values
    assert state["test_runs"][0]["exit_code"] == 1  # the sandbox was used up to the failure
    assert state["run_id"] not in pool._live


async def test_a_run_releases_only_the_sandboxes_it_created():
    from devlooper.templates import get_template

    template = get_template("python")
    both_live, first_ended = asyncio.Event(), asyncio.Event()
    seen = {}

    async def run_like(run_id: str) -> None:
        claimed = pool.claim()  # what runner._drive does for each run
        try:
            await pool.sandbox_for(run_id, "local", template, [], {"a.py": "x = 1\n"}, layer_timeout=600)
            if run_id == "first":
                await both_live.wait()
            else:
                both_live.set()
                await first_ended.wait()
                seen["second alive after the first ended"] = pool.live("second") is not None
        finally:
            await pool.release_claimed(claimed)
            if run_id == "first":
                first_ended.set()

    await asyncio.gather(run_like("first"), run_like("second"))
    assert seen == {"second alive after the first ended": True}
    assert pool.live("first") is None and pool.live("second") is None
