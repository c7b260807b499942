"""Running the graph with a checkpointer: what the CLI and embedders call."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from platformdirs import user_data_dir

from .context import Context
from .graph import builder
from .sandboxes.pool import release_all


def default_db() -> Path:
    return Path(user_data_dir("devlooper")) / "checkpoints.sqlite"


@asynccontextmanager
async def open_saver(db: str | Path | None = None) -> AsyncIterator[BaseCheckpointSaver]:
    """A SQLite checkpointer at ``db`` (default: the user's data directory)."""
    path = Path(db) if db else default_db()
    path.parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        yield saver


def compile_graph(saver: BaseCheckpointSaver) -> CompiledStateGraph:
    return builder.compile(checkpointer=saver, name="devlooper")


Update = Callable[[str, dict[str, Any]], None]
Ask = Callable[[dict[str, Any]], str]  # the question an interrupt carries -> a human's answer


async def run(
    prompt: str | None,
    context: Context,
    *,
    template: str | None = None,
    thread_id: str | None = None,
    db: str | Path | None = None,
    on_update: Update | None = None,
    ask: Ask | None = None,
) -> dict[str, Any]:
    """Run (or, with ``prompt=None``, continue) a thread to its end; return the final state.

    Checkpoints are written synchronously after every step so a hard kill loses
    at most the step that was running. When the graph pauses with ``interrupt()``
    (``Context.interactive``), ``ask`` gets the question and its answer resumes
    the run with ``Command(resume=answer)``; without ``ask`` the run stays paused
    and the returned state carries ``interrupt`` (the question).
    """
    thread_id = thread_id or uuid.uuid4().hex
    config = {"configurable": {"thread_id": thread_id}}
    payload: Any = None
    if prompt is not None:
        payload = {"prompt": prompt, **({"template": template} if template else {})}
    try:
        async with open_saver(db) as saver:
            graph = compile_graph(saver)
            while True:
                question = None
                async for chunk in graph.astream(
                    payload, config, context=context, stream_mode="updates", durability="sync"
                ):
                    for node, update in chunk.items():
                        if node == "__interrupt__":
                            question = update[0].value
                        elif on_update and isinstance(update, dict):
                            on_update(node, update)
                if question is None or ask is None:
                    break
                # input() blocks: keep the event loop (and its sandboxes) free meanwhile.
                payload = Command(resume=await asyncio.to_thread(ask, question))
            state = await graph.aget_state(config)
            values = {**state.values, "thread_id": thread_id}
            if question is not None:
                values["interrupt"] = question
            return values
    finally:
        await release_all()
