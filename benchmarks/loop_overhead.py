"""Harness overhead of a whole run: wall time of a replayed run minus the time its
test commands and installs took, divided by its iterations.

This charges the sandbox's creation, design and generation, the finish step (the
report) and writing the output to the iterations too; the overhead of one loop
iteration alone is ``iteration_overhead.py``'s.

With a replayed model every second that is not a test or an install is the
harness's own (prompt building, checkpoints, sandbox sync, routing). Runs the
bundled demo cassette on a warm environment cache, N times, and reports medians.

    .venv/bin/python benchmarks/loop_overhead.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from importlib import resources

from devlooper import Context
from devlooper.runner import run

CASSETTE = resources.files("devlooper") / "cassettes" / "demo.json"


async def once(db: str) -> tuple[float, float, int]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        final = await run(
            "a Python library that generates Voronoi diagrams",
            Context(model=f"replay:{CASSETTE}", output_dir=out),
            db=db,
        )
    wall = time.perf_counter() - started
    commands = sum(r["duration"] for r in final["test_runs"]) + sum(
        r["duration"] for r in final["action_results"] if r["kind"] in ("install", "command")
    )
    return wall, commands, final["iteration"]


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = f"{tmp}/bench.sqlite"
        await once(db)  # warm the environment cache
        samples = [await once(db) for _ in range(n)]
    walls = [w for w, _, _ in samples]
    overheads = [(w - c) / it for w, c, it in samples]
    shares = [(w - c) / w for w, c, _ in samples]
    print(f"runs: {n}, iterations per run: {samples[0][2]}")
    print(f"median wall time per run:            {statistics.median(walls):.3f} s")
    print(f"median harness overhead of the run / iterations: {statistics.median(overheads) * 1000:.0f} ms")
    print(f"median harness share of wall time:   {statistics.median(shares):.1%}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
