"""What every node needs: its context, the template, the model and the sandbox."""

from __future__ import annotations

import functools
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.runtime import Runtime

from ..bounded import clip
from ..context import Context
from ..manifest import build_manifest
from ..memory import make_edit
from ..models import Recorder, load_chat_model, recorder_for
from ..sandboxes.base import ExecResult, Sandbox
from ..sandboxes.pool import release, sandbox_for
from ..state import ActionResult, FileEdit, Layer, State
from ..templates import EnvTemplate, get_template


MANIFEST_DIFF_LIMIT = 4_000  # characters of a manifest edit's diff kept in the state


def context_of(runtime: Runtime[Context] | None) -> Context:
    """The run's context; a server may hand over a dict or nothing at all."""
    ctx = getattr(runtime, "context", None)
    if isinstance(ctx, Context):
        return ctx
    if isinstance(ctx, dict):
        names = {f.name for f in fields(Context)}
        return Context(**{k: v for k, v in ctx.items() if k in names})
    return Context()


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


async def sandbox_of(state: State, ctx: Context, files: dict[str, str] | None = None) -> Sandbox:
    return await sandbox_for(
        state["run_id"],
        ctx.sandbox,
        template_of(state, ctx),
        state.get("layers", []),
        state.get("files", {}) if files is None else files,
        layer_timeout=ctx.install_timeout,
        layer_network=ctx.layer_network,
    )


def install_layer(packages: list[str], iteration: int) -> Layer:
    return Layer(kind="install", spec=" ".join(shlex.quote(p) for p in packages), iteration=iteration)


async def run_env_step(box: Sandbox, layer: Layer, ctx: Context) -> tuple[Layer | None, ActionResult]:
    """Run an install or command; a failure is recorded for the next diagnosis, never raised."""
    result: ExecResult = await box.add_layer(layer, timeout=ctx.install_timeout)
    action = ActionResult(
        iteration=layer["iteration"],
        kind=layer["kind"],
        target=layer["spec"],
        ok=result.ok,
        exit_code=result.exit_code,
        output=result.output[-4000:],
        duration=round(result.duration, 3),
    )
    return (layer if result.ok else None), action


async def sync_manifest(
    box: Sandbox, template: EnvTemplate, files: dict[str, str], iteration: int
) -> tuple[dict[str, str], list[FileEdit]]:
    """After an install: the manifest files that now differ, and their edits."""
    changes = await build_manifest(box, template, files)
    reason = "the manifest follows the environment after an install"
    edits = []
    for path, text in changes.items():
        edit = make_edit(iteration, path, files.get(path), text, reason)
        # A lock file's diff runs to thousands of machine-written lines: the hashes
        # are what loop detection compares, a bounded excerpt is enough to read.
        edit["diff"] = clip(edit["diff"], MANIFEST_DIFF_LIMIT)[0]
        edits.append(edit)
    return changes, edits


def timed(name: str) -> Callable[[Callable[..., Awaitable[dict]]], Callable[..., Awaitable[dict]]]:
    """Add the node's wall-clock seconds to ``timings[name]`` in its update."""

    def wrap(fn: Callable[..., Awaitable[dict]]) -> Callable[..., Awaitable[dict]]:
        @functools.wraps(fn)
        async def node(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
            started = time.monotonic()
            try:
                update = await fn(state, runtime)
            except BaseException:
                # The run stops here (an error, a cancel, or an interrupt that waits for a
                # human): free its sandbox now, not at process exit, since a server lives
                # on. Whatever continues the run rebuilds the sandbox from the state.
                if state.get("run_id"):
                    await release(state["run_id"])
                raise
            update["timings"] = {name: time.monotonic() - started}
            return update

        return node

    return wrap
