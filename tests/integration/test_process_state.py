"""Nothing of a finished run stays in the process: a server's worker runs many
threads, and a run's next step may land on another worker."""

from __future__ import annotations

import uuid
from pathlib import Path

from devlooper import Context, ReplayChatModel, cassette
from devlooper.runner import run
from devlooper.sandboxes import pool
from tests.integration.test_loop import GOOD, replies


async def test_a_finished_run_leaves_no_sandbox_lock_or_recorder_behind(tmp_path: Path):
    record = tmp_path / "calls.json"
    ctx = Context(chat_model=ReplayChatModel.from_replies(replies(GOOD)), record=str(record))
    final = await run("an adder", ctx, db=tmp_path / "runs.sqlite", thread_id=uuid.uuid4().hex)
    assert final["status"] == "passed"
    run_id = final["run_id"]
    assert pool.live(run_id) is None
    assert run_id not in pool._locks
    assert str(record) not in cassette._recorders
    assert record.exists()  # the calls were recorded before the recorder was let go
