"""Live sandboxes by run, rebuilt from the state whenever they are missing or stale.

The state is the source of truth; a sandbox here is a cache of it. After a
crash, a resume in a new process, a fork from an earlier checkpoint or a switch
of backend, ``sandbox_for`` builds a sandbox that matches the state again: the
template and the layers up to the first command, then the files, then the
remaining layers (a replayed command sees the project, as it did when it first
ran), then the files again (what a replayed command changed is undone).

A remote sandbox of a paused run is parked instead of killed (``pause``): it
stays alive briefly and its id is kept in a side table (``parked``); the run's
next step reconnects to it when it is still alive and holds a prefix of the
state's layers, and builds a new one otherwise.

Each run releases exactly the sandboxes it created: ``claim`` starts recording
them for the current task (a ``ContextVar``, inherited by the graph's node
tasks), ``release_claimed`` frees them. Concurrent runs in one process never
free each other's sandboxes; ``release_all`` is for process exit and tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextvars import ContextVar, Token

from ..layers import Layer
from ..templates.base import EnvTemplate
from . import make_sandbox, parked
from .base import Sandbox, SandboxStartupError
from .remote import IDLE_LIFETIME

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
    lifetime: float | None = None,
    settings: dict | None = None,
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
            box = await _reconnect(run_id, backend, template, layers, layer_network, lifetime)
            if box is not None:
                await box.sync_files(files)  # before a command layer is run: it sees the project
        if box is None:
            blind = next((i for i, layer in enumerate(layers) if layer["kind"] == "command"), len(layers))
            box = make_sandbox(
                backend,
                template,
                layers[:blind],
                run_id=run_id,
                layer_network=layer_network,
                isolation=isolation,
                lifetime=lifetime,
                settings=settings,
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


async def _reconnect(
    run_id: str, backend: str, template: EnvTemplate, layers: list[Layer], layer_network: bool, lifetime: float | None
) -> Sandbox | None:
    """The run's parked sandbox, attached again, if it is alive and fits the state."""
    note = await asyncio.to_thread(parked.take, run_id)  # files: off a server's event loop
    if note is None or note.get("backend") != backend or note.get("environment") != template.environment_fingerprint():
        return None
    have = note.get("layers") or []
    if not _is_prefix(have, layers):  # a fork from an earlier checkpoint: it holds layers the state lacks
        return None
    box = make_sandbox(backend, template, have, run_id=run_id, layer_network=layer_network, lifetime=lifetime)
    if not await box.reconnect(note["sandbox_id"], have):
        return None  # it expired: the caller builds a new one from the state
    _live[run_id] = box
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
        await _uncancellable(box.close())


async def _uncancellable(closing: Awaitable[None]) -> None:
    """Run ``closing`` to its end even when cancelled meanwhile, then pass the cancel on.

    A stopped run's tasks are cancelled more than once (the graph's runner cancels
    its steps, ``asyncio.run`` cancels every task on the way out): a second cancel
    must not cut short the removal of a sandbox that the first one started."""
    task = asyncio.ensure_future(closing)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError


async def pause(run_id: str) -> None:
    """Let the run's sandbox go while the run waits (for a human, or after a cancel):
    a remote one is kept alive ``IDLE_LIFETIME`` seconds for the run to reconnect;
    one that cannot be reconnected to is closed."""
    box = _live.pop(run_id, None)
    if box is None:
        return
    sandbox_id = box.sandbox_id
    if sandbox_id is None:
        await _uncancellable(box.close())
        return
    await box.park(IDLE_LIFETIME)
    await asyncio.to_thread(parked.record, run_id, box.name, sandbox_id, box.template, box.layers)


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
