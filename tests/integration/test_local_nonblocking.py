"""The local sandbox never blocks the event loop (``langgraph dev`` raises when a node does)."""

from __future__ import annotations

import pytest

from devlooper.sandboxes import make_sandbox
from devlooper.templates.base import EnvTemplate

blockbuster = pytest.importorskip("blockbuster")

GENERIC = EnvTemplate(
    name="nonblocking",
    description="an environment that is a directory, built by a setup command",
    runtime="generic",
    image="debian:bookworm-slim",
    setup_commands=["echo ready > $DEVLOOPER_ENV/ready"],
    install_command="echo {packages} >> $DEVLOOPER_ENV/installed",
    test_command="true",
    manifest="none",
)


async def test_a_sandbox_lifecycle_makes_no_blocking_call_in_the_loop(tmp_path, monkeypatch):
    monkeypatch.setenv("DEVLOOPER_CACHE_DIR", str(tmp_path / "cold-cache"))  # the cold path too
    with blockbuster.blockbuster_ctx():
        async with make_sandbox("local", GENERIC) as box:
            await box.write_file("pkg/a.py", "print('a')\n")
            assert await box.read_file("pkg/a.py") == "print('a')\n"
            assert (await box.exec("cat pkg/a.py $DEVLOOPER_ENV/ready", timeout=30)).stdout == "print('a')\nready\n"
            assert (await box.add_layer({"kind": "command", "spec": "true", "iteration": 1}, timeout=60)).ok
            await box.delete_file("pkg/a.py")
