"""Nothing waits that need not: the run's sandbox and environment are built while
the model writes the files, not after."""

from __future__ import annotations

import asyncio
from typing import Any

from devlooper import Context, ReplayChatModel
from devlooper.cassette import CALL_KEY
from devlooper.runner import run
from devlooper.sandboxes import pool
from tests.integration.test_loop import GOOD, replies

WAIT = 20.0  # seconds a file's call waits for the sandbox before it says it never came

sandbox_up_during_generation: list[bool] = []


class SlowWriter(ReplayChatModel):
    """Writes each file only once the run's sandbox is up (or after ``WAIT``): a model
    slower than the environment build, as a real one is."""

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs: Any):
        key = (run_manager.metadata if run_manager else {}).get(CALL_KEY) or ""
        if key.startswith("generate_file:"):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT
            while not pool._live and loop.time() < deadline:
                await asyncio.sleep(0.05)
            sandbox_up_during_generation.append(bool(pool._live))
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


async def test_the_sandbox_is_built_while_the_model_writes_the_files(tmp_path):
    sandbox_up_during_generation.clear()
    model = SlowWriter.from_replies(replies(GOOD))
    final = await run("an adder", Context(chat_model=model), db=tmp_path / "runs.sqlite")
    assert final["status"] == "passed"
    assert sandbox_up_during_generation == [True, True]  # both files' calls saw it
