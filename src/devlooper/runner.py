"""Running the graph with a checkpointer: what the CLI and embedders call.

A run is a LangGraph thread. Its checkpoints go to SQLite (a file, by default in
the user's data directory) or Postgres (a ``postgresql://`` URL). Checkpoints are
written synchronously after every step (``durability="sync"``), so a process
killed with SIGKILL loses at most the step that was running, and ``resume``
continues from the last step that finished, in a new process. SQLite commits
without an fsync (write-ahead log, ``synchronous=NORMAL``): a power loss may take
back the last steps, never a process crash.

The run's settings (model, sandbox, template, limits, output directory) are
written into every checkpoint's metadata under ``devlooper_context``, so a
resume or a fork from an earlier checkpoint runs with the same settings unless
the caller overrides them; ``DEVLOOPER_*`` variables never change a recorded one.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot

from .archive import history  # noqa: F401 (the runner's public API: a thread's checkpoints)
from .checkpoint_db import CONTEXT_KEY, is_postgres, postgres_connection, sqlite_path
from .context import Context, settings_of
from .errors import ConfigError
from .graph import builder
from .cassette import forget_recorder
from .models import continue_recording
from .sandboxes.pool import claim, release_claimed
from .server_root import local_caller
from .usage import budget_exceeded


Update = Callable[[str, dict[str, Any]], None]
Custom = Callable[[dict[str, Any]], None]  # a custom stream event (devlooper.events): step and model-call progress
# The question an interrupt carries -> a person's answer, or None to leave the run paused.
Ask = Callable[[dict[str, Any]], Any]


@asynccontextmanager
async def open_saver(db: str | Path | None = None) -> AsyncIterator[BaseCheckpointSaver]:
    """A checkpointer: Postgres for a ``postgresql://`` URL, else SQLite at ``db``.

    The default is ``checkpoints.sqlite`` in the user's data directory.
    """
    if is_postgres(db):
        async with _postgres_saver(str(db)) as saver:
            yield saver
        return
    path = sqlite_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        await _set_up_sqlite(saver)
        # With a write-ahead log, synchronous=NORMAL makes a commit a write to the log
        # without an fsync: a checkpoint is in the database once the step's commit returns,
        # so a process killed with SIGKILL still loses at most the step that was running;
        # only a power loss or a kernel crash can take back the last commits (never corrupt
        # the file). The default (FULL) fsyncs twice per step, most of a step's checkpoint
        # time on a busy disk.
        await saver.conn.execute("PRAGMA synchronous=NORMAL")
        yield saver


SETUP_ATTEMPTS = 20  # of a SQLite database's setup that another connection holds locked


async def _set_up_sqlite(saver: AsyncSqliteSaver) -> None:
    """The saver's tables and its write-ahead log (``journal_mode=WAL``). Switching a new
    file to WAL needs it alone and does not wait for a busy one (SQLite answers "database
    is locked" at once): runs that open the same new database together (in one process
    or several) try again, shortly, until the first has made it."""
    for attempt in range(SETUP_ATTEMPTS):
        try:
            await saver.setup()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == SETUP_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))


@asynccontextmanager
async def _postgres_saver(url: str) -> AsyncIterator[BaseCheckpointSaver]:
    async with postgres_connection(url) as conn:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver  # noqa: PLC0415 (the postgres extra)

        saver = AsyncPostgresSaver(conn=conn)
        await saver.setup()  # creates or migrates the tables; idempotent
        yield saver


def compile_graph(saver: BaseCheckpointSaver) -> CompiledStateGraph:
    return builder.compile(checkpointer=saver, name="devlooper")


# --- the run's settings, kept with its checkpoints ---------------------------------
def record_context(ctx: Context) -> str:
    """The context as JSON for checkpoint metadata (which keeps only scalars)."""
    return json.dumps(settings_of(ctx), sort_keys=True)


def recorded_context(snapshot: StateSnapshot, **overrides: Any) -> Context:
    """The context a checkpoint was written with, with ``overrides`` (non-None) applied.

    Every recorded setting counts as given, an empty one (no output directory, no
    cassette) included: a ``DEVLOOPER_*`` variable set when the run is resumed
    fills only a setting the checkpoint never recorded, it never changes the run.
    """
    raw = (snapshot.metadata or {}).get(CONTEXT_KEY)
    names = {f.name for f in fields(Context)}
    recorded: dict[str, Any] = json.loads(raw) if raw else {}
    # A None model means "a chat model object was used": that one must be given again.
    data = {k: v for k, v in recorded.items() if k in names and not (k == "model" and v is None)}
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "chat_model_class" in recorded and "chat_model" not in data and "model" not in data:
        raise ConfigError(
            f"this run used a chat model object ({recorded['chat_model_class']}): pass it again "
            "(chat_model=...) or name a model (model=... / --model) to continue it"
        )
    return Context(**data)


def _config(
    thread_id: str, ctx: Context, checkpoint_id: str | None = None, callbacks: list[Any] | None = None
) -> dict[str, Any]:
    configurable = {"thread_id": thread_id}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {
        **({"callbacks": callbacks} if callbacks else {}),
        "configurable": configurable,
        "metadata": {CONTEXT_KEY: record_context(ctx)},
        # Inherited by every node and model call: a filter for the whole run in LangSmith.
        "tags": ["devlooper", f"sandbox:{ctx.sandbox}"],
        "run_name": "devlooper",
    }


async def _drive(
    graph: CompiledStateGraph,
    payload: Any,
    config: dict[str, Any],
    ctx: Context,
    on_update: Update | None,
    ask: Ask | None = None,
    on_custom: Custom | None = None,
) -> dict[str, Any]:
    """Stream the graph to its end (or to a pause nobody answers); return the final state.

    ``on_update`` gets each step's update as it ends, ``on_custom`` the custom
    progress events (a step starts, a model call starts and ends) as they happen.

    When the graph pauses with ``interrupt()`` (``Context.interactive``), ``ask``
    gets the question and its answer resumes the run with ``Command(resume=...)``;
    without ``ask``, or when it answers None, the run stays paused (checkpointed,
    resumable) and the state carries ``interrupt``. ``ask`` is called in this
    thread, with nothing of the run in flight: a terminal prompt there gets Ctrl-C
    at once (a worker thread blocked in ``input()`` would keep the process alive).
    """
    question = None
    claimed = claim()  # this run's sandboxes, not those of concurrent runs in the process
    try:
        while True:
            question = None
            modes = ["updates", "custom"]
            async for mode, chunk in graph.astream(payload, config, context=ctx, stream_mode=modes, durability="sync"):
                if mode == "custom":
                    if on_custom:
                        on_custom(chunk)
                    continue
                for node, update in chunk.items():
                    if node == "__interrupt__":
                        question = update[0].value
                    elif on_update and isinstance(update, dict):
                        on_update(node, update)
            if question is None or ask is None:
                break
            answer = ask(question)
            if answer is None:
                break
            payload = Command(resume=answer)
            # The answer goes to the thread's newest checkpoint, not to a fork's starting point.
            newest = {k: v for k, v in config["configurable"].items() if k != "checkpoint_id"}
            config = {**config, "configurable": newest}
    finally:
        await release_claimed(claimed)
        forget_recorder(ctx.record)  # a resume on another worker continues the cassette file
    thread = {"configurable": {"thread_id": config["configurable"]["thread_id"]}}
    state = await graph.aget_state(thread)
    values = {**state.values, "thread_id": thread["configurable"]["thread_id"]}
    if question is not None:
        values["interrupt"] = question
    return values


# --- entry points -------------------------------------------------------------------
async def run(
    prompt: str | None,
    context: Context,
    *,
    template: str | None = None,
    thread_id: str | None = None,
    db: str | Path | None = None,
    on_update: Update | None = None,
    ask: Ask | None = None,
    callbacks: list[Any] | None = None,
    project_files: dict[str, str] | None = None,
    on_custom: Custom | None = None,
) -> dict[str, Any]:
    """Run a new thread to its end and return the final state (plus ``thread_id``).

    With ``project_files`` (improve mode, e.g. ``improve.load_project(path).files``)
    the run starts from that project instead of generating one. With
    ``prompt=None`` the thread continues from its last checkpoint with
    ``context`` as given; ``resume`` does that with the recorded context.
    """
    thread_id = thread_id or uuid.uuid4().hex
    payload = None
    if prompt is not None:
        payload = {"prompt": prompt, **({"template": template} if template else {})}
        if project_files:
            payload["project_files"] = project_files
    async with open_saver(db) as saver:
        graph = compile_graph(saver)
        if payload is not None and (await saver.aget_tuple({"configurable": {"thread_id": thread_id}})):
            # A new prompt on a used thread would add to the old run's lists and counters.
            raise ConfigError(
                f"thread {thread_id} already holds a run: continue it with `devlooper resume {thread_id}` "
                "or start a new one with another thread id"
            )
        config = _config(thread_id, context, callbacks=callbacks)
        with local_caller():  # the machine's user's run: its paths are not confined (server_root)
            return await _drive(graph, payload, config, context, on_update, ask, on_custom)


async def resume(
    thread_id: str,
    *,
    checkpoint_id: str | None = None,
    db: str | Path | None = None,
    on_update: Update | None = None,
    prepare: Callable[[Context], Context] | None = None,
    ask: Ask | None = None,
    callbacks: list[Any] | None = None,
    on_custom: Custom | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Continue ``thread_id`` from its last checkpoint, or fork it from ``checkpoint_id``.

    The sandbox is rebuilt from the state (template, layers, files), so this
    works in a new process after a crash. Settings come from the checkpoint;
    keyword ``overrides`` (e.g. ``max_iterations=20``, ``chat_model=...``) win,
    ``DEVLOOPER_*`` variables do not (see :func:`recorded_context`).
    ``prepare`` may check or adjust the context before anything runs.

    Forking runs the graph again from an earlier checkpoint: the new steps are
    a branch of the same thread and the newest branch is the thread's state.
    A thread that already finished is returned as it is (with
    ``already_finished=True``). A run paused on a question (``interactive``)
    asks it again, through ``ask``.
    """
    async with open_saver(db) as saver:
        graph = compile_graph(saver)
        snapshot = await checkpoint_of(graph, thread_id, checkpoint_id)
        ctx = recorded_context(snapshot, **overrides)
        if prepare is not None:
            ctx = prepare(ctx)
        if ctx.record:
            await asyncio.to_thread(continue_recording, ctx.record, ctx.model)
        if not snapshot.next and snapshot.values.get("status") == "budget" and checkpoint_id is None:
            checkpoint_id = await _before_budget_stop(graph, thread_id, ctx, snapshot)
            snapshot = await checkpoint_of(graph, thread_id, checkpoint_id)
        if not snapshot.next:
            return {**snapshot.values, "thread_id": thread_id, "already_finished": True}
        # Only a fork names its checkpoint: naming the latest one would add a fork
        # checkpoint to a plain resume.
        config = _config(thread_id, ctx, checkpoint_id, callbacks)
        with local_caller():
            return await _drive(graph, None, config, ctx, on_update, ask, on_custom)


async def _before_budget_stop(graph: CompiledStateGraph, thread_id: str, ctx: Context, final: StateSnapshot) -> str:
    """A run that stopped for its budget goes on with a bigger one from the checkpoint
    before its last test run: that run is repeated and routed again, with the budget given now."""
    usage = final.values.get("usage", {})
    if why := budget_exceeded(usage, ctx):
        raise ConfigError(f"thread {thread_id} {why}: resume it with a bigger --max-tokens or --max-cost")
    async for snap in graph.aget_state_history({"configurable": {"thread_id": thread_id}}):
        if snap.next == ("test",):
            return snap.config["configurable"]["checkpoint_id"]
    raise ConfigError(f"thread {thread_id} has no checkpoint before a test run to continue from")


async def checkpoint_of(graph: CompiledStateGraph, thread_id: str, checkpoint_id: str | None = None) -> StateSnapshot:
    """The thread's latest checkpoint, or the one named; a clear error when there is none."""
    configurable = {"thread_id": thread_id}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    snapshot = await graph.aget_state({"configurable": configurable})
    if not snapshot.config.get("configurable", {}).get("checkpoint_id"):
        if checkpoint_id:
            raise ConfigError(f"thread {thread_id} has no checkpoint {checkpoint_id}; see `devlooper history {thread_id}`")
        raise ConfigError(f"no run with thread id {thread_id} in this checkpoint database (see --db)")
    return snapshot
