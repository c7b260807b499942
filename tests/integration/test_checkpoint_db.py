"""`devlooper runs` and `history` read the checkpoint rows without the graph: what they
show is what the compiled graph reads from the same database, on SQLite and Postgres,
for finished, crashed, paused and forked threads (a fork stores folded channels whole)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devlooper import Context, ReplayChatModel
from devlooper.archive import history, list_runs
from devlooper.errors import CassetteError
from devlooper.runner import compile_graph, open_saver, resume, run
from tests.integration.postgres import Unavailable, postgres_server
from tests.integration.test_loop import BAD, FIX, GOOD, replies

SCRIPT = replies(BAD, **{"diagnose:1": "add subtracts", "plan:1": FIX, "fix_file:1:adder.py": GOOD})


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db(request, tmp_path_factory) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path_factory.mktemp("db") / "db.sqlite")
        return
    pytest.importorskip("langgraph.checkpoint.postgres", reason="the postgres extra is not installed")
    try:
        with postgres_server() as url:
            yield url
    except Unavailable as why:
        pytest.skip(f"no Postgres server: {why}")


async def graph_history(thread_id: str, db: str) -> list[dict]:
    """A thread's checkpoints as the compiled graph reads them (StateSnapshot, folded channels folded)."""
    async with open_saver(db) as saver:
        snaps = [s async for s in compile_graph(saver).aget_state_history({"configurable": {"thread_id": thread_id}})]
    rows = []
    for snap in reversed(snaps):
        runs = snap.values.get("test_runs") or []
        rows.append({
            "checkpoint_id": snap.config["configurable"]["checkpoint_id"],
            "parent_id": (snap.parent_config or {}).get("configurable", {}).get("checkpoint_id"),
            "step": snap.metadata.get("step"),
            "source": snap.metadata.get("source"),
            "next": ",".join(snap.next),
            "iteration": snap.values.get("iteration", 0),
            "exit_code": runs[-1]["exit_code"] if runs else None,
            "failing": runs[-1]["failed"] if runs else None,
            "status": snap.values.get("status"),
            "created_at": snap.created_at,
        })
    return rows


async def test_runs_and_history_show_what_the_graph_reads(db: str, tmp_path: Path):
    crashing = {k: v for k, v in SCRIPT.items() if not k.startswith("fix_file")}  # fails inside apply
    with pytest.raises(CassetteError):
        await run("crashes", Context(chat_model=ReplayChatModel.from_replies(crashing)), thread_id="crash", db=db)
    await run("pauses", Context(chat_model=ReplayChatModel.from_replies(SCRIPT), interactive=True),
              thread_id="pause", db=db)
    await run("gives up", Context(chat_model=ReplayChatModel.from_replies(SCRIPT), max_iterations=1),
              thread_id="fork", db=db)
    # Forking from the checkpoint before the first test run: a new branch, and the folded
    # channels the old branch wrote from there are stored whole in the fork's checkpoint.
    rows = await history("fork", db=db)
    before_test = next(r for r in rows if r["node"] == "generate")
    forked = await resume("fork", checkpoint_id=before_test["checkpoint_id"], db=db, max_iterations=3,
                          chat_model=ReplayChatModel.from_replies(SCRIPT), output_dir=str(tmp_path / "out"))
    assert forked["status"] == "passed"

    for thread in ("crash", "pause", "fork"):
        ours = await history(thread, db=db)
        expected = await graph_history(thread, db)
        assert [{k: v for k, v in r.items() if k != "node"} for r in ours] == expected
        by_id = {r["checkpoint_id"]: r for r in ours}
        for row in ours:  # the node that wrote a checkpoint is what its parent had next
            parent = by_id.get(row["parent_id"])
            if row["source"] not in ("input", "fork", "update") and parent:
                assert row["node"] == parent["next"]
    fork_rows = await history("fork", db=db)
    assert [r["source"] for r in fork_rows].count("fork") == 1
    assert fork_rows[-1]["status"] == "passed" and fork_rows[-1]["failing"] == 0

    listed = {r["thread_id"]: r for r in await list_runs(db)}
    async with open_saver(db) as saver:
        graph = compile_graph(saver)
        for thread, prompt in (("crash", "crashes"), ("pause", "pauses"), ("fork", "gives up")):
            state = (await graph.aget_state({"configurable": {"thread_id": thread}})).values
            row = listed[thread]
            assert row["prompt"] == prompt and row["template"] == Context().template  # as recorded
            assert row["iterations"] == state.get("iteration", 0)
            assert row["status"] == (state.get("status") if state.get("status") in ("passed", "gave_up") else "unfinished")


async def test_reading_a_database_that_does_not_exist_creates_none(tmp_path: Path):
    db = tmp_path / "none" / "db.sqlite"
    assert await list_runs(db) == []
    assert not db.parent.exists()
