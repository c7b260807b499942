"""Harness overhead per loop iteration: one diagnose -> plan -> apply -> test cycle.

An iteration's overhead is the wall time from the end of one test step to the
end of the next (diagnose, plan, apply, test and the checkpoint after each)
minus what its commands took (the test run's and the apply step's install and
command ``ExecResult`` durations) minus model time, which is zero here: the
model is replayed. What remains is the harness's own: prompts, validation,
loop memory, sandbox sync and the state-truth reconcile, checkpoints, streaming.

Two sessions, each with the SQLite saver and LangGraph's in-memory saver,
alternated in the same process:

- ``tiny``: the bundled demo cassette (3 test runs, so 2 full cycles: iteration 2
  follows an install of numpy, iteration 3 a fix of one file; shown one by one);
- ``realistic``: ``checkpoint_growth.py``'s scripted run (10 modules and their
  verbose tests, about 64 KB of stored output per test run, two modules
  rewritten per iteration), ``N`` iterations for each ``N`` given.

It prints the median overhead per iteration at iterations 2-4 and at the last 3
(flatness), and each node's own share (its step time minus its commands; the
rest of an iteration is checkpointing and the graph's own bookkeeping).

    PYTHONPATH=src .venv/bin/python benchmarks/iteration_overhead.py [--repeat R] [N ...]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from devlooper import Context, ReplayChatModel
from devlooper.runner import _config, _drive, compile_graph, open_saver
from devlooper.server_root import local_caller

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkpoint_growth import replies  # noqa: E402  the realistic session, scripted once

CASSETTE = resources.files("devlooper") / "cassettes" / "demo.json"
CYCLE = ("diagnose", "plan", "apply", "test")
COMMANDS = ("install", "command")


@asynccontextmanager
async def saver_for(kind: str, tmp: str) -> AsyncIterator[Any]:
    if kind == "memory":
        yield InMemorySaver()
        return
    async with open_saver(f"{tmp}/{uuid.uuid4().hex}.sqlite") as saver:
        yield saver


async def session(prompt: str, ctx: Context, saver_kind: str) -> dict[str, Any]:
    """One run; per iteration (from the second test run on): overhead and each node's own share."""
    marks: list[tuple[str, float, dict]] = []

    def on_update(node: str, update: dict) -> None:
        marks.append((node, time.perf_counter(), update))

    with tempfile.TemporaryDirectory() as tmp:
        async with saver_for(saver_kind, tmp) as saver:
            graph = compile_graph(saver)
            config = _config(uuid.uuid4().hex, ctx)
            with local_caller():
                final = await _drive(graph, {"prompt": prompt}, config, ctx, on_update)
    return {"status": final["status"], "iterations": per_iteration(marks)}


def per_iteration(marks: list[tuple[str, float, dict]]) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    last_test: float | None = None
    nodes: dict[str, float] = {}
    commands = 0.0
    for node, at, update in marks:
        # What the step's commands took: the test run, or the installs and commands it ran.
        ran = sum(r["duration"] for r in update.get("action_results") or [] if r["kind"] in COMMANDS)
        if node == "test":
            ran += update["test_runs"][-1]["duration"]
        own = (update.get("timings") or {}).get(node, 0.0) - ran
        if last_test is not None:
            nodes[node] = nodes.get(node, 0.0) + own
            commands += ran
        if node == "test":
            if last_test is not None and set(CYCLE) <= set(nodes):
                wall = at - last_test
                overhead = wall - commands
                out.append({"overhead": overhead, "between": overhead - sum(nodes.values()), **nodes})
            last_test, nodes, commands = at, {}, 0.0
    return out


def summary(label: str, runs: list[list[dict[str, float]]]) -> str:
    """Medians over repeats and over the iterations of the window, in ms."""

    def median_of(window: Callable[[list], list], key: str) -> float:
        values = [it[key] for run in runs for it in window(run) if key in it]
        return statistics.median(values) * 1000 if values else float("nan")

    first = lambda run: run[:3]  # noqa: E731  iterations 2-4: the first three full cycles
    last = lambda run: run[-3:]  # noqa: E731
    parts = " ".join(f"{k} {median_of(first, k):.0f}" for k in (*CYCLE, "between"))
    if min(len(run) for run in runs) < 6:  # too short for two windows: each iteration on its own
        each = ", ".join(
            f"iteration {i + 2} {median_of(lambda run, i=i: run[i:i + 1], 'overhead'):.0f} ms"
            f" (apply {median_of(lambda run, i=i: run[i:i + 1], 'apply'):.0f})"
            for i in range(min(len(run) for run in runs))
        )
        return f"{label}: {each}; median {median_of(first, 'overhead'):.0f} ms (nodes, ms: {parts})"
    return (
        f"{label}: {median_of(first, 'overhead'):.0f} ms per iteration at iterations 2-4, "
        f"{median_of(last, 'overhead'):.0f} ms at the last 3 (nodes at 2-4, ms: {parts})"
    )


async def main(lengths: list[int], repeat: int, freeze: bool = True) -> None:
    cases: list[tuple[str, str, Callable[[], Context]]] = [
        ("tiny (demo cassette, 3 test runs)", "a Python library that generates Voronoi diagrams",
         lambda: Context(model=f"replay:{CASSETTE}")),
    ]
    for n in lengths:
        cases.append((
            f"realistic, {n} iterations", "a package of ten modules",
            lambda n=n: Context(chat_model=ReplayChatModel.from_replies(replies(n)), max_iterations=n, loop_window=1000),
        ))
    for label, prompt, make in cases:
        await session(prompt, make(), "memory")  # warm the environment cache and the imports
        if freeze:
            gc.freeze()  # as the devlooper program does before its run (cli.freeze_objects)
        results: dict[str, list] = {"sqlite": [], "memory": []}
        for _ in range(repeat):
            for kind in ("sqlite", "memory"):  # alternated: the machine's load hits both alike
                results[kind].append((await session(prompt, make(), kind))["iterations"])
        for kind in ("sqlite", "memory"):
            print(summary(f"{label}, {kind} saver", results[kind]))
        ratio = statistics.median(it["overhead"] for r in results["sqlite"] for it in r) / statistics.median(
            it["overhead"] for r in results["memory"] for it in r
        )
        print(f"{label}: SQLite / in-memory saver, median over all iterations: {ratio:.2f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("lengths", nargs="*", type=int, default=[10, 30])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-freeze", action="store_true", help="leave out the CLI's gc.freeze() before a run")
    a = p.parse_args()
    asyncio.run(main(a.lengths, a.repeat, not a.no_freeze))
