"""Live sandboxes by run, rebuilt from the state whenever they are missing or stale.

The state is the source of truth; a sandbox here is a cache of it. After a
crash, a resume in a new process, a fork from an earlier checkpoint or a switch
of backend, ``sandbox_for`` builds a sandbox that matches the state again:
the template, then the recorded layers in order, then the files.
"""

from __future__ import annotations

import asyncio

from ..layers import Layer
from ..templates.base import EnvTemplate
from . import make_sandbox
from .base import Sandbox, SandboxStartupError

_live: dict[str, Sandbox] = {}
_locks: dict[str, asyncio.Lock] = {}


async def sandbox_for(
    run_id: str,
    backend: str,
    template: EnvTemplate,
    layers: list[Layer],
    files: dict[str, str],
    *,
    layer_timeout: float,
    layer_network: bool = True,
    isolation: str | None = None,
) -> Sandbox:
    lock = _locks.setdefault(run_id, asyncio.Lock())
    async with lock:
        box = _live.get(run_id)
        stale = box is not None and (
            box.name != backend or box.template != template or not _is_prefix(box.layers, layers)
        )
        if stale:
            await release(run_id)
            box = None
        if box is None:
            box = make_sandbox(
                backend, template, layers, run_id=run_id, layer_network=layer_network, isolation=isolation
            )
            await box.start()
            _live[run_id] = box
        for layer in layers[len(box.layers) :]:
            # A layer recorded in the state succeeded once; replaying it must too.
            result = await box.add_layer(layer, timeout=layer_timeout)
            if not result.ok:
                raise SandboxStartupError(f"replaying layer {layer['spec']!r} failed:\n{result.output[-2000:]}")
        await box.sync_files(files)
        return box


def _is_prefix(have: list[Layer], want: list[Layer]) -> bool:
    key = lambda ls: [(x["kind"], x["spec"]) for x in ls]  # noqa: E731
    return key(have) == key(want)[: len(have)]


async def release(run_id: str) -> None:
    box = _live.pop(run_id, None)
    if box is not None:
        await box.close()


async def release_all() -> None:
    for run_id in list(_live):
        await release(run_id)
