"""What keeping the sandbox equal to the state costs after each step that ran code.

    .venv/bin/python benchmarks/state_sync.py [N]

A project of 200 files of 2 kB each, in the local sandbox (bubblewrap when usable)
and the E2B and Modal adapters over their SDK fakes (``tests/sdk_fakes.py``: one
real ``find`` + ``sha256sum`` on this machine). Medians of N rounds of:

* ``sync_files`` when nothing changed (a listing and a comparison, no write);
* ``reconcile`` after a command rewrote 5 files and created one;
* ``exec("true")``, one command in the same sandbox, as the unit of comparison.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.sdk_fakes

from devlooper.sandboxes import e2b as e2b_backend  # noqa: E402
from devlooper.sandboxes import make_sandbox  # noqa: E402
from devlooper.sandboxes import modal as modal_backend  # noqa: E402
from devlooper.templates import get_template  # noqa: E402
from tests import sdk_fakes  # noqa: E402

TEMPLATE = get_template("python").model_copy(update={"setup_commands": [], "base_packages": []})
FILES = {f"pkg/m{i:03}.py": f"# module {i}\n" + "x = 1\n" * 340 for i in range(200)}
CHANGE = "for f in pkg/m00[0-4].py; do echo '# touched' >> $f; done; echo 'y = 2' > pkg/new.py"


async def timed(coro) -> float:
    started = time.perf_counter()
    await coro
    return time.perf_counter() - started


async def measure(backend: str, n: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {"sync, nothing changed": [], "reconcile after a command": [], "exec true": []}
    async with make_sandbox(backend, TEMPLATE, [], run_id="bench") as box:
        await box.sync_files(FILES)
        for _ in range(n):
            samples["sync, nothing changed"].append(await timed(box.sync_files(FILES)))
            samples["exec true"].append(await timed(box.exec("true", timeout=30)))
            await box.exec(CHANGE, timeout=30)
            samples["reconcile after a command"].append(await timed(box.reconcile(FILES)))
            await box.sync_files(FILES)
    return {k: statistics.median(v) for k, v in samples.items()}


async def main(n: int) -> None:
    e2b_fake, modal_fake = sdk_fakes.fake_e2b_module(), sdk_fakes.fake_modal_module()
    e2b_backend._sdk, modal_backend._sdk = (lambda: e2b_fake), (lambda: modal_fake)
    print(f"200 files of 2 kB, median of {n}")
    for backend in ("local", "e2b", "modal"):
        m = await measure(backend, n)
        unit = m["exec true"]
        print(f"{backend:6} exec true {unit * 1000:6.1f} ms | " + " | ".join(
            f"{k} {v * 1000:6.1f} ms ({v / unit:.1f}x)" for k, v in m.items() if k != "exec true"))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 7))
