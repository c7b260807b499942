"""Wall time against the critical path: does the harness run at the speed of the model?

    PYTHONPATH=src .venv/bin/python benchmarks/critical_path.py [LATENCY] [N]

The session: 10 files generated (5 modules and their tests), 3 modules wrong, one
iteration that fixes the 3 of them, then green. The model answers after LATENCY
seconds (default 0.5) per call, as a remote model would, in two ways measured in
the same run: a replayed model that sleeps (no HTTP client involved), and the
real langchain-openai client against a scripted OpenAI-compatible server on
loopback (tests/openai_server.py) that waits LATENCY before each reply, so the
client's connection pool, retries and JSON parsing are on the path. The critical path is what no harness can avoid: the
model calls that depend on each other (design, one wave of files, diagnose, plan,
one wave of fixes: 5 x LATENCY) plus the time the test runs took. The ratio
wall / critical path is reported (median of N runs) for the default concurrency
and for narrower limits: 4 calls at once (the earlier default) and 3 (the
original devlooper generated 3 files at a time; it also fixed them one by one,
which is not reproduced here).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from devlooper import Context, ReplayChatModel
from devlooper.runner import run

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.openai_server
from tests.openai_server import OpenAIServer, replies_from  # noqa: E402

MODULES = 5
WRONG = (0, 1, 2)


class RemoteModel(ReplayChatModel):
    """A replayed model with a remote model's latency per call."""

    latency: float = 0.5

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs: Any):
        await asyncio.sleep(self.latency)
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


def module(i: int, right: bool) -> str:
    return f"def f{i}(x):\n    return x {'+' if right else '-'} {i + 1}\n"


def replies() -> dict:
    files = [{"path": f"pkg/m{i}.py", "purpose": "a module"} for i in range(MODULES)]
    files += [{"path": f"tests/test_m{i}.py", "purpose": "its tests"} for i in range(MODULES)]
    out: dict = {"plan_project": {"notes": "a package", "files": files, "packages": []}}
    for i in range(MODULES):
        out[f"generate_file:pkg/m{i}.py"] = module(i, i not in WRONG)
        out[f"generate_file:tests/test_m{i}.py"] = f"from pkg.m{i} import f{i}\n\n\ndef test_f{i}():\n    assert f{i}(1) == {i + 2}\n"
        out[f"fix_file:1:pkg/m{i}.py"] = module(i, True)
    out["diagnose:1"] = "three modules subtract instead of adding"
    out["plan:1"] = {
        "summary": "add, not subtract",
        "actions": [{"kind": "fix_file", "path": f"pkg/m{i}.py", "instructions": "use +"} for i in WRONG],
    }
    return out


def served_replies() -> dict:
    """The same session keyed as the loopback server tells requests apart (one iteration: no numbers)."""
    return {key.replace("fix_file:1:", "fix_file:").removesuffix(":1"): reply for key, reply in replies().items()}


async def one(latency: float, concurrency: int, server: OpenAIServer | None = None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        if server is None:
            model = RemoteModel.from_replies(replies())
            model.latency = latency
            ctx = Context(chat_model=model, max_concurrency=concurrency)
        else:
            ctx = Context(model="openai:loopback", base_url=server.url, max_concurrency=concurrency)
        started = time.perf_counter()
        final = await run("a package", ctx, db=f"{tmp}/runs.sqlite", thread_id=uuid.uuid4().hex)
        wall = time.perf_counter() - started
        assert final["status"] == "passed" and final["iteration"] == 2, final.get("status")
        tests = sum(r["duration"] for r in final["test_runs"])
        return wall / (5 * latency + tests)


async def main(latency: float, n: int) -> None:
    with OpenAIServer(replies_from(served_replies()), latency=latency) as server:
        await one(latency, 16)  # the environment cache is warm from here on
        await one(latency, 16, server)  # and the client's imports are done
        print(f"| concurrency (median of {n}, {latency} s per model call) | wall / critical path, replayed model "
              "| wall / critical path, langchain-openai → loopback server |")
        print("| --- | --- | --- |")
        for label, concurrency in (("default (16)", 16), ("4 (the earlier default)", 4), ("3 (the original devlooper's generation width)", 3)):
            replayed, served = [], []
            for _ in range(n):  # alternated, so both see the same load on the machine
                replayed.append(await one(latency, concurrency))
                served.append(await one(latency, concurrency, server))
            print(f"| {label} | {statistics.median(replayed):.2f} | {statistics.median(served):.2f} |")


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(float(args[0]) if args else 0.5, int(args[1]) if len(args) > 1 else 5))
