"""`langgraph dev` serving this checkout's graph, for tests and benchmarks.

The real server is started from the repository root (where langgraph.json is),
on a free port (2024 may be taken), with analytics and the version check off,
and stopped by its process group (it runs uvicorn workers in its own session).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
STARTUP = 90.0  # seconds; the first start imports the whole server


class Unavailable(Exception):
    """Why the server cannot be started here."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def langgraph_cli() -> list[str]:
    exe = Path(sys.executable).with_name("langgraph")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("langgraph")
    if not found:
        raise Unavailable("the langgraph CLI is not installed (pip install 'devlooper[server]')")
    return [found]


@contextmanager
def langgraph_dev(root: Path, log: Path, env: dict[str, str] | None = None, *more: str) -> Iterator[str]:
    """The server's URL while it runs; ``root`` is its DEVLOOPER_SERVER_ROOT, ``log`` its output,
    ``more`` further options of ``langgraph dev`` (``--n-jobs-per-worker N``)."""
    port = free_port()
    env = {
        **{k: v for k, v in (env or os.environ).items() if k != "OPENAI_API_KEY"},
        "DEVLOOPER_SERVER_ROOT": str(root),
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "1",
        "LANGSMITH_TRACING": "false",
        # The package must import from this checkout, as `pip install -e .` does.
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [*langgraph_cli(), "dev", "--no-browser", "--no-reload", "--port", str(port), "--host", "127.0.0.1",
             *more],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"langgraph dev exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"langgraph dev did not answer /ok in {STARTUP:.0f}s:\n{log.read_text()[-4000:]}")
            time.sleep(0.3)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
