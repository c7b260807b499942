"""Node plumbing: the run's context, template, model and sandbox, and node timing."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.errors import GraphInterrupt
from langgraph.runtime import Runtime

from .. import events
from ..context import Context, with_settings
from ..models import Recorder, load_chat_model, load_embeddings, recorder_for
from ..prompts.retrieval import Ranker, rank
from ..sandboxes import sandbox_class
from ..sandboxes.base import Sandbox
from ..sandboxes.pool import pause, release, sandbox_for
from ..server_root import confine, must_confine
from ..state import State
from ..templates import EnvTemplate, get_template


def context_of(runtime: Runtime[Context] | None, state: State | None = None) -> Context:
    """The run's context; a server may hand over a dict or nothing at all.

    With ``state``, every setting the caller did not give explicitly comes from the
    settings the run started with (``State.settings``): a server client that answers a
    pause with only ``Command(resume=...)`` continues the run as it began, not with
    defaults. In a node wrapped by :func:`timed` this is already done, and the context
    confined (see :func:`confined`).
    """
    ctx = getattr(runtime, "context", None)
    if isinstance(ctx, dict):
        names = {f.name for f in fields(Context)}
        ctx = Context(**{k: v for k, v in ctx.items() if k in names})
    elif not isinstance(ctx, Context):
        ctx = Context()
    return with_settings(ctx, (state or {}).get("settings"))


async def settled(runtime: Runtime[Context], state: State) -> Runtime[Context]:
    """The runtime with the run's recorded settings filled in, then confined."""
    ctx = context_of(runtime, state)
    if ctx is not getattr(runtime, "context", None):
        runtime = runtime.override(context=ctx)
    return await confined(runtime)


async def confined(runtime: Runtime[Context]) -> Runtime[Context]:
    """The runtime with a server client's paths confined to the server's root
    (:mod:`devlooper.server_root`): a path it may not use is a ConfigError here,
    before the node runs, so the first node refuses it before any model call and a
    later one when a client continues the thread with another context."""
    if not must_confine():
        return runtime
    # Resolving links and listing the output touch the disk: off the server's event loop.
    checked = await asyncio.to_thread(confine, context_of(runtime))
    return runtime.override(context=checked)


def sandbox_settings(ctx: Context) -> dict[str, Any]:
    """Where the run's generated code runs and how it is confined: the backend and,
    for the local one, its isolation (``bwrap`` or ``none``) and its other settings
    (limits, cache directory and cap: ``LocalSettings``, saved with the run so that a
    resume in another shell reproduces them); a remote backend's code runs on its
    provider's machines (``remote``)."""
    if ctx.sandbox != "local":
        return {"backend": ctx.sandbox, "isolation": "remote"}
    from ..sandboxes.isolation import LocalSettings  # noqa: PLC0415

    local = LocalSettings.from_env(ctx.isolation).model_dump(mode="json")
    return {"backend": "local", "isolation": ctx.isolation, "local": local}


def template_of(state: State, ctx: Context) -> EnvTemplate:
    """The run's template: as resolved when it started, else by name or path."""
    if state.get("env_template"):
        return EnvTemplate.model_validate(state["env_template"])
    return get_template(state.get("template") or ctx.template)


def owned_by_environment(template: EnvTemplate, path: str) -> bool:
    """A path the project may not write: under a link into the environment, or the results file."""
    linked = any(path == name or path.startswith(name.rstrip("/") + "/") for name in template.env_links)
    return linked or path == template.results_file


def model_of(ctx: Context) -> tuple[BaseChatModel, Recorder | None]:
    model = ctx.chat_model or load_chat_model(ctx.model, ctx.base_url)
    return model, recorder_for(ctx.record, ctx.model)


def ranker_of(ctx: Context) -> Ranker:
    """How the code a prompt shows is ranked: BM25 alone, or fused with embedding
    similarity when the run has an embedding model (``prompts.semantic``). The one place
    that decides; without an embedding model nothing of embeddings is imported."""
    if ctx.embedding_model is None and not ctx.embeddings:
        return rank
    from ..prompts.semantic import HybridRanker  # noqa: PLC0415

    if ctx.embedding_model is not None:
        inner = ctx.embedding_model
        name = f"{type(inner).__name__}:{getattr(inner, 'model', '')}:{id(inner)}"
        return HybridRanker(inner, name)
    base_url = ctx.embeddings_base_url or ctx.base_url
    return HybridRanker(load_embeddings(ctx.embeddings, base_url), f"{ctx.embeddings}@{base_url or ''}")


def check_embeddings(ctx: Context) -> None:
    """A bad embedding model setting stops the run at its start, before any model call
    (the CLI checks it before that: ``cli._check``)."""
    if ctx.embedding_model is None and ctx.embeddings:
        load_embeddings(ctx.embeddings, ctx.embeddings_base_url or ctx.base_url)


async def build_prompt(ranker: Ranker, build: Callable[..., list], *args: Any, **kwargs: Any) -> list:
    """``build(*args, ranker=ranker, **kwargs)``: a prompt whose code is ranked by an
    embedding model is built in a thread, since embedding is a blocking network call
    that must not hold a server's event loop."""
    if ranker is rank:
        return build(*args, ranker=ranker, **kwargs)
    return await asyncio.to_thread(build, *args, ranker=ranker, **kwargs)


async def require_sandbox(ctx: Context) -> None:
    """Before a run's first model call or sandbox: a server or API run that cannot confine
    generated code (no working bubblewrap, a missing key) stops here with the reason, as
    the CLI does before it starts; so does a bad embedding model setting. In a thread:
    it may probe bubblewrap once."""
    await asyncio.to_thread(sandbox_class(ctx.sandbox).check_config, ctx)
    check_embeddings(ctx)


async def sandbox_of(state: State, ctx: Context, files: dict[str, str] | None = None) -> Sandbox:
    return await sandbox_for(
        state["run_id"],
        ctx.sandbox,
        template_of(state, ctx),
        state.get("layers", []),
        state.get("files", {}) if files is None else files,
        layer_timeout=ctx.install_timeout,
        layer_network=ctx.layer_network,
        isolation=ctx.isolation,
        settings=(state.get("sandbox_settings") or {}).get("local"),
        # What the run may still spend in its sandbox: each iteration's test and install
        # limits (a remote backend whose lifetime is fixed at creation, Modal, uses it).
        lifetime=ctx.max_iterations * (ctx.test_timeout + ctx.install_timeout),
    )


def timed(name: str) -> Callable[[Callable[..., Awaitable[dict]]], Callable[..., Awaitable[dict]]]:
    """Add the node's wall-clock seconds to ``timings[name]`` in its update, and its
    step event (:mod:`devlooper.events`); announce its start as a custom event."""

    def wrap(fn: Callable[..., Awaitable[dict]]) -> Callable[..., Awaitable[dict]]:
        @functools.wraps(fn)
        async def node(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
            started = time.monotonic()
            events.step_start(name, state)
            try:
                runtime = await settled(runtime, state)
                update = await fn(state, runtime)
            except BaseException as exc:
                # The run stops here (an error, a cancel, or an interrupt that waits for a
                # human): free its sandbox now, not at process exit, since a server lives
                # on. Whatever continues the run reconnects to a parked sandbox or rebuilds
                # it from the state; after an error it is killed.
                if state.get("run_id"):
                    waits = isinstance(exc, GraphInterrupt | asyncio.CancelledError)
                    await (pause if waits else release)(state["run_id"])
                raise
            seconds = time.monotonic() - started
            update["timings"] = {name: seconds}
            # What the step did, small enough for every streamed update (events.py).
            update["event"] = events.step_event(name, state, update, seconds)
            return update

        return node

    return wrap
