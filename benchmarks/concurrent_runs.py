"""Concurrent runs: N at once in one process and in N processes, against one alone.

    PYTHONPATH=src .venv/bin/python benchmarks/concurrent_runs.py [N] [LATENCY]

Each run is the session of ``critical_path.py`` (10 files, one iteration fixing
3, then green) with a replayed model that waits LATENCY seconds per call, its own
thread and its own SQLite database. Reported: how many runs ended green, and the
throughput (runs per second) of N at once as a multiple of one run alone.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from critical_path import RemoteModel, replies

from devlooper import Context
from devlooper.runner import run


async def session(latency: float, db: str) -> bool:
    model = RemoteModel.from_replies(replies())
    model.latency = latency
    final = await run("a package", Context(chat_model=model), db=db, thread_id=uuid.uuid4().hex)
    return final["status"] == "passed"


async def in_one_process(n: int, latency: float, tmp: str) -> tuple[int, float]:
    started = time.perf_counter()
    results = await asyncio.gather(
        *(session(latency, f"{tmp}/one-{i}.sqlite") for i in range(n)), return_exceptions=True
    )
    return sum(r is True for r in results), time.perf_counter() - started


def in_processes(n: int, latency: float, tmp: str) -> tuple[int, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, __file__, "--one", str(latency), f"{tmp}/proc-{i}.sqlite"], env=env)
        for i in range(n)
    ]
    green = sum(p.wait() == 0 for p in procs)
    return green, time.perf_counter() - started


async def main(n: int, latency: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await session(latency, f"{tmp}/warm.sqlite")  # the environment cache is warm from here on
        started = time.perf_counter()
        assert await session(latency, f"{tmp}/alone.sqlite")
        alone = time.perf_counter() - started
        green_one, wall_one = await in_one_process(n, latency, tmp)
    with tempfile.TemporaryDirectory() as tmp:
        green_procs, wall_procs = in_processes(n, latency, tmp)
    print(f"| {n} runs at once ({latency} s per model call) | green | throughput × one run alone |")
    print("| --- | --- | --- |")
    print(f"| in one process | {green_one} of {n} | {n * alone / wall_one:.2f} |")
    print(f"| in {n} processes (each also imports the graph) | {green_procs} of {n} | {n * alone / wall_procs:.2f} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        sys.exit(0 if asyncio.run(session(float(sys.argv[2]), sys.argv[3])) else 1)
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]) if args else 8, float(args[1]) if len(args) > 1 else 0.5))
