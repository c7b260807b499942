"""Checkpoints in Postgres (`--db postgresql://...`), against a real server the suite starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devlooper import Context, ReplayChatModel
from devlooper.errors import ConfigError
from devlooper.runner import history, resume, run
from tests.integration.postgres import Unavailable, postgres_server
from tests.integration.test_loop import BAD, FIX, GOOD, replies

pytest.importorskip("langgraph.checkpoint.postgres", reason="the postgres extra is not installed")


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    try:
        with postgres_server() as url:
            yield url
    except Unavailable as why:
        pytest.skip(f"no Postgres server: {why}")


SCRIPT = replies(BAD, **{"diagnose:1": "add subtracts", "plan:1": FIX, "fix_file:1:adder.py": GOOD})


async def test_a_run_checkpoints_to_postgres_and_continues_in_a_new_saver(postgres: str, tmp_path: Path):
    model = ReplayChatModel.from_replies(SCRIPT)
    final = await run("an adder", Context(chat_model=model, max_iterations=1), thread_id="pg-1", db=postgres)
    assert final["status"] == "gave_up" and final["iteration"] == 1

    rows = await history("pg-1", db=postgres)
    assert [r["node"] for r in rows] == ["input", "__start__", "design", "generate", "test", "finish"]
    generated = rows[3]
    # Time travel with a larger budget from the checkpoint before the first test run:
    # the recorded settings are used, the override wins, and the fork goes green.
    forked = await resume(
        "pg-1", checkpoint_id=generated["checkpoint_id"], db=postgres,
        chat_model=ReplayChatModel.from_replies(SCRIPT), max_iterations=3, output_dir=str(tmp_path / "out"),
    )
    assert forked["status"] == "passed" and forked["iteration"] == 2
    assert (tmp_path / "out" / "adder.py").read_text() == GOOD
    rows = await history("pg-1", db=postgres)
    assert rows[-1]["status"] == "passed" and [r["source"] for r in rows].count("fork") == 1


def test_the_cli_runs_and_lists_history_with_a_postgres_url(postgres: str, tmp_path: Path):
    cassette = tmp_path / "cassette.json"
    cassette.write_text(json.dumps({"calls": [{"key": k, "reply": v} for k, v in SCRIPT.items()]}))
    base = [sys.executable, "-m", "devlooper"]
    done = subprocess.run(
        [*base, "run", "an adder", "--model", f"replay:{cassette}", "--db", postgres, "--thread-id", "pg-cli",
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run([*base, "history", "pg-cli", "--db", postgres, "--json"],
                            capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert rows[-1]["node"] == "finish" and rows[-1]["status"] == "passed" and rows[-1]["iteration"] == 2


async def test_an_unreachable_postgres_is_a_config_error():
    from tests.integration.postgres import _free_port

    with pytest.raises(ConfigError, match="cannot connect to the Postgres checkpoint database"):
        await history("x", db=f"postgresql://nobody@127.0.0.1:{_free_port()}/none?connect_timeout=3")


async def test_runs_lists_the_postgres_threads_newest_first_and_reports_a_crashed_one(postgres: str, tmp_path: Path):
    from devlooper.archive import list_runs, rebuild_report
    from devlooper.errors import CassetteError

    crashing = {k: v for k, v in SCRIPT.items() if not k.startswith("fix_file")}  # fails inside apply
    with pytest.raises(CassetteError):
        await run("an adder that crashes", Context(chat_model=ReplayChatModel.from_replies(crashing)),
                  thread_id="pg-crash", db=postgres)
    await run("a finished adder", Context(chat_model=ReplayChatModel.from_replies(SCRIPT)), thread_id="pg-done", db=postgres)

    rows = await list_runs(postgres)
    assert [r["started"] for r in rows] == sorted((r["started"] for r in rows), reverse=True)
    by_id = {r["thread_id"]: r for r in rows}
    assert rows[0]["thread_id"] == "pg-done" and rows[1]["thread_id"] == "pg-crash"
    assert (by_id["pg-done"]["status"], by_id["pg-done"]["iterations"]) == ("passed", 2)
    assert by_id["pg-done"]["prompt"] == "a finished adder" and by_id["pg-done"]["template"] == "python"
    assert (by_id["pg-crash"]["status"], by_id["pg-crash"]["iterations"]) == ("unfinished", 1)

    page = await rebuild_report("pg-crash", db=postgres, out=tmp_path / "report")
    report = json.loads((page.parent / "report.json").read_text())
    assert report["status"] == "unfinished" and report["timeline"][1]["diagnosis"] == "add subtracts"

    listed = subprocess.run([sys.executable, "-m", "devlooper", "runs", "--db", postgres, "--json"],
                            capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["thread_id"] for line in listed.stdout.splitlines()][:2] == ["pg-done", "pg-crash"]


def test_a_thread_paused_in_one_process_is_answered_and_finished_in_another(postgres: str, tmp_path: Path):
    """What a server's workers do: the step after a pause may run in another process;
    it has only the Postgres checkpoints (no sandbox, lock or recorder of the first)."""
    cassette = tmp_path / "cassette.json"
    cassette.write_text(json.dumps({"calls": [{"key": k, "reply": v} for k, v in SCRIPT.items()]}))
    base = [sys.executable, "-m", "devlooper"]
    paused = subprocess.run(
        [*base, "run", "an adder", "--model", f"replay:{cassette}", "--db", postgres, "--thread-id", "pg-pause",
         "--interactive", "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(), stdin=subprocess.DEVNULL,
    )
    assert paused.returncode == 3, paused.stderr  # paused at the plan: nobody at a terminal
    assert "paused (plan)" in paused.stderr
    done = subprocess.run(
        [*base, "resume", "pg-pause", "--db", postgres, "--answer", "yes"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(), stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "adder.py").read_text() == GOOD
