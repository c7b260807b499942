"""Local sandbox latency: create -> first command, one command, cold vs warm environments.

    PYTHONPATH=src .venv/bin/python benchmarks/sandbox_latency.py [N] [--cold]

* create -> first command: ``start()`` on a warm environment cache plus ``exec("true")``,
  with bubblewrap (when usable) and as a plain subprocess; with bubblewrap that command
  gets a bubblewrap of its own while the resident sandbox process starts;
* create -> sandbox process ready: ``start()`` plus ``resident_ready()`` (bubblewrap and
  the helper's Python start), which the first command no longer waits for;
* one command: ``exec("true")`` in a started sandbox: with bubblewrap, in the
  resident sandbox process (a fork) and, for comparison, one bubblewrap per
  command (as before the resident process), and the ratio of the two;
* with ``--cold``: the python template cold (empty cache: venv + pytest from the
  index) vs warm (cached), and an install layer cold vs warm.

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


def box(isolation: str, layers=(), *, resident: bool = True) -> LocalSandbox:
    sb = LocalSandbox(SandboxSpec(template=PYTHON, layers=list(layers), run_id="bench"), isolation=isolation)
    if not resident:
        sb.resident_off = "one bubblewrap per command, for comparison"
    return sb


async def timed(coro) -> float:
    started = time.perf_counter()
    await coro
    return time.perf_counter() - started


async def create_to_first_command(isolation: str) -> float:
    sb = box(isolation)
    started = time.perf_counter()
    try:
        await sb.start()
        result = await sb.exec("true", timeout=30)
        assert result.ok, result.output
        return time.perf_counter() - started
    finally:
        await sb.close()


async def create_to_resident(isolation: str) -> float:
    sb = box(isolation)
    started = time.perf_counter()
    try:
        await sb.start()
        assert await sb.resident_ready(), sb.resident_off
        return time.perf_counter() - started
    finally:
        await sb.close()


async def one_command(isolation: str, n: int, *, resident: bool = True) -> float:
    async with box(isolation, resident=resident) as sb:
        await sb.exec("true", timeout=30)
        await sb.resident_ready()  # started with the sandbox; the first command does not wait for it
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


async def main(n: int, cold: bool) -> None:
    modes = ["none"] + (["bwrap"] if bwrap.usable()[0] else [])
    with tempfile.TemporaryDirectory() as cache:
        os.environ["DEVLOOPER_CACHE_DIR"] = cache
        for mode in modes:
            await create_to_first_command(mode)  # build the environment once
        print("| measure (median) | isolation | ms |")
        print("| --- | --- | --- |")
        for mode in modes:
            first = statistics.median([await create_to_first_command(mode) for _ in range(n)])
            one = await one_command(mode, n * 4)
            print(f"| create -> first command (warm cache) | {mode} | {first * 1000:.1f} |")
            print(f"| one more command (exec true) | {mode} | {one * 1000:.1f} |")
            if mode == "bwrap":
                ready = statistics.median([await create_to_resident(mode) for _ in range(n)])
                print(f"| create -> sandbox process ready | {mode} | {ready * 1000:.1f} |")
                fresh = await one_command(mode, n * 4, resident=False)
                print(f"| one more command, one bubblewrap each (before) | {mode} | {fresh * 1000:.1f} |")
                print(f"\nresident / one bubblewrap per command: {one / fresh:.2f}")
    if cold:
        for mode in modes:
            for name, seconds in (await cold_and_warm(mode)).items():
                print(f"[{mode:5}] python {name:11}: {seconds:7.2f} s")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--cold"]
    asyncio.run(main(int(args[0]) if args else 5, "--cold" in sys.argv))
