"""Live sandboxes by run, rebuilt from the state whenever they are missing or stale.

The state is the source of truth; a sandbox here is a cache of it. After a
crash, a resume in a new process, a fork from an earlier checkpoint or a switch
of backend, ``sandbox_for`` builds a sandbox that matches the state again: the
template and the layers up to the first command, then the files, then the
remaining layers (a replayed command sees the project, as it did when it first
ran), then the files again (what a replayed command changed is undone).

Each run releases exactly the sandboxes it created: ``claim`` starts recording
them for the current task (a ``ContextVar``, inherited by the graph's node
tasks), ``release_claimed`` frees them. Concurrent runs in one process never
free each other's sandboxes; ``release_all`` is for process exit and tests.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar, Token

from ..layers import Layer
from ..templates.base import EnvTemplate
from . import make_sandbox
from .base import Sandbox, SandboxStartupError

_live: dict[str, Sandbox] = {}
_locks: dict[str, asyncio.Lock] = {}
_claimed: ContextVar[set[str] | None] = ContextVar("devlooper_claimed_sandboxes", default=None)


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
    claimed = _claimed.get()
    if claimed is not None:
        claimed.add(run_id)
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
            blind = next((i for i, layer in enumerate(layers) if layer["kind"] == "command"), len(layers))
            box = make_sandbox(
                backend, template, layers[:blind], run_id=run_id, layer_network=layer_network, isolation=isolation
            )
            await box.start()
            _live[run_id] = box
            await box.sync_files(files)  # before a command layer is replayed: it sees the project
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


def live(run_id: str) -> Sandbox | None:
    """The run's live sandbox, if it has one (for inspection: tests, diagnostics)."""
    return _live.get(run_id)


async def release(run_id: str) -> None:
    box = _live.pop(run_id, None)
    if box is not None:
        await box.close()


def claim() -> Token:
    """Record, from now on in this task and the tasks it starts, every run id given a sandbox."""
    return _claimed.set(set())


async def release_claimed(token: Token) -> None:
    """Release the sandboxes recorded since ``claim`` (this run's, not another's)."""
    claimed = _claimed.get() or set()
    _claimed.reset(token)
    for run_id in sorted(claimed):
        await release(run_id)
        _locks.pop(run_id, None)  # the run is over: nothing of it stays in the process


async def release_all() -> None:
    for run_id in list(_live):
        await release(run_id)
    _locks.clear()
