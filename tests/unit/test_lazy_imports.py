"""Commands that need no graph import no graph: they start at once.

Each command runs in a fresh interpreter (imports are per process), which then
reports whether LangGraph, LangChain or LangSmith were imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
HEAVY = ("langgraph", "langchain_core", "langchain", "langsmith", "openai", "anthropic")

PROBE = """
import contextlib, io, json, sys
from devlooper import cli
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = cli.main(sys.argv[1:])
    except SystemExit as exc:  # --help
        code = exc.code
heavy = sorted({name.split('.')[0] for name in sys.modules} & set(json.loads(HEAVY)))
print(json.dumps({"code": code, "heavy": heavy}))
"""


def imported_by(*argv: str, tmp_path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": SRC, "DEVLOOPER_CACHE_DIR": str(tmp_path)}
    code = PROBE.replace("json.loads(HEAVY)", repr(list(HEAVY)))
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["templates"], ["cache", "list"], ["run", "--help"]])
def test_commands_that_need_no_graph_import_no_graph_or_model_library(argv, tmp_path):
    found = imported_by(*argv, tmp_path=tmp_path)
    assert found["code"] in (0, None)
    assert found["heavy"] == []


def test_listing_runs_and_checkpoints_reads_the_database_without_the_graph(tmp_path):
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.sqlite import SqliteSaver

    db = tmp_path / "db.sqlite"
    with SqliteSaver.from_conn_string(str(db)) as saver:
        checkpoint = {**empty_checkpoint(), "channel_values": {"__start__": {"prompt": "an adder"}},
                      "channel_versions": {"__start__": saver.get_next_version(None, None)}}
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        saver.put(config, checkpoint, {"source": "input", "step": -1}, checkpoint["channel_versions"])
    for argv in (["runs", "--db", str(db)], ["history", "t", "--db", str(db)]):
        found = imported_by(*argv, tmp_path=tmp_path)
        assert found["code"] == 0
        assert found["heavy"] == [], argv


def test_the_public_api_still_gives_the_compiled_graph_by_name():
    proc = subprocess.run(
        [sys.executable, "-c", "import devlooper.runner; from devlooper import graph, Context, run;"
         "print(type(graph).__name__, Context.__name__, run.__name__)"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["CompiledStateGraph", "Context", "run"]
