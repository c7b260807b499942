"""The built-in templates on the local sandbox: environment cold vs warm, one test run.

    .venv/bin/python benchmarks/templates.py [N] [TEMPLATE ...]

For each template (default: all built-ins), with bubblewrap when usable:

* environment cold: ``start()`` with an empty cache, download caches included
  (so it includes fetching pytest, the npm harness, ...);
* environment warm: ``start()`` again, a cache hit;
* test run: the template's test command on its example project in a started
  sandbox, median of N (for rust the first build is excluded: later runs are
  incremental, as in a real loop).
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
from devlooper.templates import BUILTIN, EnvTemplate


async def measure(template: EnvTemplate, isolation: str, n: int) -> dict[str, float]:
    def box() -> LocalSandbox:
        return LocalSandbox(SandboxSpec(template=template, run_id="bench"), isolation=isolation)

    with tempfile.TemporaryDirectory() as cache:
        os.environ["DEVLOOPER_CACHE_DIR"] = cache
        out = {}
        sb = box()
        started = time.perf_counter()
        await sb.start()
        out["environment cold"] = time.perf_counter() - started
        await sb.close()
        sb = box()
        started = time.perf_counter()
        await sb.start()
        out["environment warm"] = time.perf_counter() - started
        try:
            await sb.sync_files({**template.setup_files, **template.example_files})
            first = await sb.exec(template.test_command, timeout=600)
            assert first.ok, first.output[-2000:]
            samples = []
            for _ in range(n):
                started = time.perf_counter()
                result = await sb.exec(template.test_command, timeout=600)
                samples.append(time.perf_counter() - started)
                assert result.ok, result.output[-2000:]
            out["test run (median)"] = statistics.median(samples)
        finally:
            await sb.close()
    return out


async def main(n: int, names: list[str]) -> None:
    isolation = "bwrap" if bwrap.usable()[0] else "none"
    for name in names or list(BUILTIN):
        for what, seconds in (await measure(BUILTIN[name], isolation, n)).items():
            print(f"[{isolation}] {name:7} {what:18}: {seconds:7.2f} s")


if __name__ == "__main__":
    args = sys.argv[1:]
    count = int(args.pop(0)) if args and args[0].isdigit() else 5
    asyncio.run(main(count, args))
