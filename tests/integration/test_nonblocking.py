"""The loop never blocks the event loop, checked as `langgraph dev` checks it.

`langgraph dev` runs graphs with blockbuster active and fails a run with
``BlockingError`` on a synchronous file or process call made on the event loop.
Here the whole loop (sandbox start, file sync, an environment layer, test runs,
the manifest and the output) runs under the server's own blockbuster setup.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_scripted
from tests.integration.test_loop import BAD, GOOD, replies

queue = pytest.importorskip("langgraph_runtime_inmem.queue", reason="the langgraph dev runtime is not installed")

LAYERED_FIX = {
    "summary": "add must add; record the fix in the environment",
    "actions": [
        {"kind": "fix_file", "path": "adder.py", "instructions": "use +"},
        {"kind": "delete_file", "path": "stale.py", "instructions": "not needed"},
        {"kind": "command", "command": "python -c 'print(42)'"},
    ],
}


@pytest.fixture
def server_blocking_checks():
    if not hasattr(queue, "_enable_blockbuster"):
        pytest.skip("this langgraph-runtime-inmem has no _enable_blockbuster to copy the server's checks from")
    bb = queue._enable_blockbuster()
    try:
        yield bb
    finally:
        bb.deactivate()


async def test_a_whole_run_makes_no_blocking_call(output_dir: Path, tmp_path: Path, server_blocking_checks):
    plan = {
        "notes": "one module, a stale one and the tests",
        "files": [
            {"path": "adder.py", "purpose": "add()"},
            {"path": "stale.py", "purpose": "nothing"},
            {"path": "tests/test_adder.py", "purpose": "tests"},
        ],
        "packages": [],
    }
    script = replies(BAD, **{
        "plan_project": plan,
        "generate_file:stale.py": "X = 1\n",
        "diagnose:1": "add subtracts",
        "plan:1": LAYERED_FIX,
        "fix_file:1:adder.py": GOOD,
    })
    cassette = tmp_path / "recorded.json"
    state = await run_scripted(script, output_dir=str(output_dir), record=str(cassette))
    assert state["status"] == "passed", state.get("reason")
    assert [layer["kind"] for layer in state["layers"]] == ["command"]
    assert "stale.py" not in state["files"]
    assert (output_dir / "adder.py").read_text() == GOOD
    assert "fix_file:1:adder.py" in cassette.read_text()  # recording, too, stays off the event loop


async def test_the_check_is_live(server_blocking_checks):
    """Guard: the fixture really raises on a blocking call made on the event loop."""
    from blockbuster import BlockingError

    with pytest.raises(BlockingError):
        Path("/tmp").mkdir(exist_ok=True)
