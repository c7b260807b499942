"""What crash safety costs: checkpoint writes per step, checkpoint size, and the
time a resume takes to rebuild its sandbox from the state.

Replays the bundled demo session (3 iterations, 12 steps) with ``durability="sync"``
and times every write the checkpointer makes (``aput`` and ``aput_writes``, the
calls a step waits for). Then, as ``devlooper resume`` does in a new process,
reads the thread's last red checkpoint and rebuilds a sandbox from it (template,
layers, files) on a warm environment cache.

    .venv/bin/python benchmarks/checkpoints.py [N] [--postgres postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from importlib import resources

from devlooper import Context
from devlooper.runner import compile_graph, open_saver, run
from devlooper.sandboxes.pool import release_all, sandbox_for
from devlooper.templates import get_template

CASSETTE = resources.files("devlooper") / "cassettes" / "demo.json"
PROMPT = "a Python library that generates Voronoi diagrams"


class Timed:
    """Wraps a saver's write methods and keeps how long each call took."""

    def __init__(self, saver) -> None:
        self.seconds: list[float] = []
        for name in ("aput", "aput_writes"):
            setattr(saver, name, self._wrap(getattr(saver, name)))

    def _wrap(self, fn):
        async def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.seconds.append(time.perf_counter() - started)

        return timed


async def one_run(db: str, thread: str) -> tuple[float, int, int]:
    """Total seconds of checkpoint writes, number of steps, bytes of the last checkpoint."""
    timers: list[Timed] = []
    import devlooper.runner as runner

    original = runner.open_saver

    def timed_saver(db_):
        manager = original(db_)

        class Wrapped:
            async def __aenter__(self):
                saver = await manager.__aenter__()
                timers.append(Timed(saver))
                return saver

            async def __aexit__(self, *exc):
                return await manager.__aexit__(*exc)

        return Wrapped()

    runner.open_saver = timed_saver
    try:
        with tempfile.TemporaryDirectory() as out:
            final = await run(PROMPT, Context(model=f"replay:{CASSETTE}", output_dir=out), db=db, thread_id=thread)
    finally:
        runner.open_saver = original
    async with open_saver(db) as saver:
        tup = await saver.aget_tuple({"configurable": {"thread_id": thread}})
        size = len(saver.serde.dumps_typed(tup.checkpoint)[1])
        steps = tup.metadata["step"] + 1
    assert final["status"] == "passed"
    return sum(timers[0].seconds), steps, size


async def rebuild(db: str, thread: str) -> float:
    """Seconds to read the last red checkpoint and rebuild its sandbox, as a resume does."""
    await release_all()
    started = time.perf_counter()
    async with open_saver(db) as saver:
        graph = compile_graph(saver)
        snapshots = [s async for s in graph.aget_state_history({"configurable": {"thread_id": thread}})]
        red = next(s for s in snapshots if s.next == ("test",) and s.values.get("iteration") == 2)
        values = red.values
        await sandbox_for(
            values["run_id"], "local", get_template(values["template"]), values["layers"], values["files"],
            layer_timeout=600,
        )
    seconds = time.perf_counter() - started
    await release_all()
    return seconds


async def main(n: int, postgres: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dbs = {"sqlite": f"{tmp}/bench.sqlite", **({"postgres": postgres} if postgres else {})}
        for label, db in dbs.items():
            await one_run(db, "warm")  # warms the environment cache
            samples = [await one_run(db, f"{label}-{i}-{time.time_ns()}") for i in range(n)]
            per_step = [total / steps for total, steps, _ in samples]
            thread = f"{label}-rebuild-{time.time_ns()}"
            await one_run(db, thread)
            rebuilds = [await rebuild(db, thread) for _ in range(n)]
            print(f"[{label}] runs: {n}, steps per run: {samples[0][1]}")
            print(f"[{label}] median checkpoint writes per step: {statistics.median(per_step) * 1000:.1f} ms")
            print(f"[{label}] size of the final checkpoint:      {samples[0][2] / 1024:.1f} KiB")
            print(f"[{label}] median resume rebuild (warm cache): {statistics.median(rebuilds) * 1000:.0f} ms")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("n", nargs="?", type=int, default=5)
    p.add_argument("--postgres", default=None, help="also measure a Postgres database at this URL")
    args = p.parse_args()
    asyncio.run(main(args.n, args.postgres))
