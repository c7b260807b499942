"""Local sandbox latency: create -> first command, one command, cold vs warm environments.

    .venv/bin/python benchmarks/sandbox_latency.py [N]

* create -> first command: ``start()`` on a warm environment cache plus ``exec("true")``,
  with bubblewrap (when usable) and as a plain subprocess;
* one command: ``exec("true")`` in a started sandbox;
* the python template cold (empty cache: venv + pytest from the index) vs warm
  (cached), and an install layer cold vs warm.

Each cold measurement uses a fresh cache directory; pip's download cache is in it
too, so "cold" includes downloading from the package index.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time

from devlooper.sandboxes import bwrap
from devlooper.sandboxes.base import SandboxSpec
from devlooper.sandboxes.local import LocalSandbox
from devlooper.templates import get_template

PYTHON = get_template("python")
SIX = {"kind": "install", "spec": "six", "iteration": 1}


def box(isolation: str, layers=()) -> LocalSandbox:
    return LocalSandbox(SandboxSpec(template=PYTHON, layers=list(layers), run_id="bench"), isolation=isolation)


async def timed(coro) -> float:
    started = time.perf_counter()
    await coro
    return time.perf_counter() - started


async def create_to_first_command(isolation: str) -> float:
    started = time.perf_counter()
    async with box(isolation) as sb:
        result = await sb.exec("true", timeout=30)
        assert result.ok, result.output
    return time.perf_counter() - started


async def one_command(isolation: str, n: int) -> float:
    async with box(isolation) as sb:
        samples = [await timed(sb.exec("true", timeout=30)) for _ in range(n)]
    return statistics.median(samples)


async def cold_and_warm(isolation: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["DEVLOOPER_CACHE_DIR"] = cache
        sb = box(isolation)
        out = {"env cold": await timed(sb.start())}
        await sb.close()
        sb = box(isolation)
        out["env warm"] = await timed(sb.start())
        out["layer cold"] = await timed(sb.add_layer(SIX, timeout=300))
        await sb.close()
        sb = box(isolation)
        await sb.start()
        out["layer warm"] = await timed(sb.add_layer(SIX, timeout=300))
        await sb.close()
    return out


async def main(n: int) -> None:
    modes = ["none"] + (["bwrap"] if bwrap.usable()[0] else [])
    with tempfile.TemporaryDirectory() as cache:
        os.environ["DEVLOOPER_CACHE_DIR"] = cache
        for mode in modes:
            await create_to_first_command(mode)  # build the environment once
        for mode in modes:
            first = statistics.median([await create_to_first_command(mode) for _ in range(n)])
            one = await one_command(mode, n * 4)
            print(f"[{mode:5}] create -> first command (warm cache): {first * 1000:7.1f} ms")
            print(f"[{mode:5}] one command (exec true):              {one * 1000:7.1f} ms")
    for mode in modes:
        for name, seconds in (await cold_and_warm(mode)).items():
            print(f"[{mode:5}] python {name:11}: {seconds:7.2f} s")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
