"""Checkpoints store what a step changed, not the whole state again.

A file written once must be stored once (in the step's writes), however many
checkpoints follow; the same for a test run's output. A thread loaded in a new
saver (a resume) still sees every file and every run.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from devlooper import Context, ReplayChatModel
from devlooper.runner import history, run
from tests.integration.test_loop import ADDER_PLAN, BAD, TESTS

MARKER = "UNIQUE-CONTENT-" + "x" * 2000  # a large, recognisable piece of a generated file


def replies(iterations: int) -> dict:
    tests = TESTS + f"\n\n# {MARKER}\n"
    out = {"plan_project": ADDER_PLAN, "generate_file:adder.py": BAD, "generate_file:tests/test_adder.py": tests}
    for it in range(1, iterations + 1):
        out[f"diagnose:{it}"] = "add subtracts"
        out[f"plan:{it}"] = {"summary": f"attempt {it}", "actions": [{"kind": "fix_file", "path": "adder.py", "instructions": "x"}]}
        out[f"fix_file:{it}:adder.py"] = BAD + f"# attempt {it}\n"
    return out


def rows_holding(db: Path, table: str, column: str, needle: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT count(*) FROM {table} WHERE instr({column}, ?) > 0", (needle.encode(),)).fetchone()[0]
    finally:
        con.close()


async def test_a_file_written_once_is_stored_once_however_many_checkpoints_follow(tmp_path: Path):
    db, thread = tmp_path / "runs.sqlite", uuid.uuid4().hex
    ctx = Context(chat_model=ReplayChatModel.from_replies(replies(4)), max_iterations=4, loop_window=1000)
    final = await run("an adder", ctx, db=db, thread_id=thread)
    assert final["status"] == "gave_up" and final["iteration"] == 4
    assert MARKER in final["files"]["tests/test_adder.py"]
    checkpoints = len(await history(thread, db=db))
    assert checkpoints > 10
    # Written by generate, once; no checkpoint repeats it.
    assert rows_holding(db, "writes", "value", MARKER) == 1
    assert rows_holding(db, "checkpoints", "checkpoint", MARKER) == 0


async def test_a_thread_loaded_again_has_every_file_and_every_run(tmp_path: Path):
    from devlooper.runner import compile_graph, open_saver

    db, thread = tmp_path / "runs.sqlite", uuid.uuid4().hex
    ctx = Context(chat_model=ReplayChatModel.from_replies(replies(3)), max_iterations=3, loop_window=1000)
    final = await run("an adder", ctx, db=db, thread_id=thread)
    async with open_saver(db) as saver:  # a new saver: nothing of the run is in memory
        state = (await compile_graph(saver).aget_state({"configurable": {"thread_id": thread}})).values
    assert state["files"] == final["files"]
    assert [r["output"] for r in state["test_runs"]] == [r["output"] for r in final["test_runs"]]
    assert state["edits"] == final["edits"] and len(state["edits"]) == 2  # 3 test runs, 2 fixes between them
