"""Concurrent runs: N at once in one process and in N processes, against one alone.

    PYTHONPATH=src .venv/bin/python benchmarks/concurrent_runs.py [N] [LATENCY]

Each run is the session of ``critical_path.py`` (10 files, one iteration fixing
3, then green) with a replayed model that waits LATENCY seconds per call, its own
thread and its own SQLite database. Reported: how many runs ended green, and the
throughput (runs per second) of N at once as a multiple of one run alone.

The same N runs are also sent at once through ``langgraph dev`` (one server
process; tests/langgraph_dev.py) with the LangGraph SDK: as it starts (its queue
runs one run at a time) and with ``--n-jobs-per-worker N``. There the model is the real langchain-openai client
against the loopback OpenAI-compatible server waiting LATENCY per call
(tests/openai_server.py; a client cannot hand the server a Python model), and the
throughput is compared with one run alone through the same server.
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

from critical_path import RemoteModel, replies, served_replies

from devlooper import Context
from devlooper.runner import run
from tests.langgraph_dev import Unavailable, langgraph_dev
from tests.openai_server import OpenAIServer, replies_from


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


async def through_server(n: int, latency: float, tmp: str, *options: str) -> tuple[int, float, float] | str:
    """(green, wall time of n at once, one run alone) through `langgraph dev`, or why it could not run."""
    from langgraph_sdk import get_client  # noqa: PLC0415 (the server extra)

    async def one(client, model_url: str) -> bool:
        thread = await client.threads.create()
        final = await client.runs.wait(thread["thread_id"], "devlooper", input={"prompt": "a package"},
                                       context={"model": "openai:loopback", "base_url": model_url})
        return isinstance(final, dict) and final.get("status") == "passed"

    try:
        with OpenAIServer(replies_from(served_replies()), latency=latency) as model, \
                langgraph_dev(Path(tmp), Path(tmp) / "server.log", None, *options) as url:
            client = get_client(url=url, timeout=600)
            if not await one(client, model.url):  # the graph's imports and the environment cache are warm from here on
                return f"a run through the server did not pass:\n{(Path(tmp) / 'server.log').read_text()[-3000:]}"
            started = time.perf_counter()
            await one(client, model.url)
            alone = time.perf_counter() - started
            started = time.perf_counter()
            results = await asyncio.gather(*(one(client, model.url) for _ in range(n)), return_exceptions=True)
            return sum(r is True for r in results), time.perf_counter() - started, alone
    except Unavailable as why:
        return str(why)


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
    for label, options in (("as it starts", ()), (f"--n-jobs-per-worker {n}", ("--n-jobs-per-worker", str(n)))):
        with tempfile.TemporaryDirectory() as tmp:
            served = await through_server(n, latency, tmp, *options)
        if isinstance(served, str):
            print(f"| through `langgraph dev` {label} | not measured: {served.splitlines()[0]} | |")
            continue
        green_served, wall_served, alone_served = served
        print(f"| through `langgraph dev` {label} (langchain-openai → loopback server) | {green_served} of {n} "
              f"| {n * alone_served / wall_served:.2f} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        sys.exit(0 if asyncio.run(session(float(sys.argv[2]), sys.argv[3])) else 1)
    args = sys.argv[1:]
    asyncio.run(main(int(args[0]) if args else 8, float(args[1]) if len(args) > 1 else 0.5))
