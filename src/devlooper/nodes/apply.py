"""apply: carry out the debug plan.

File fixes are model calls that run concurrently; deletes are immediate; both
are recorded as edits. Installs and commands then run in order as environment
layers; a failure is recorded for the next diagnosis, never raised.
"""

from __future__ import annotations

import asyncio
import time

from langgraph.runtime import Runtime

from .. import prompts
from ..context import Context
from ..memory import make_edit
from ..models import ask_text
from ..sandboxes.workspace import digest
from ..schemas import Action
from ..state import ActionResult, Layer, State
from .common import (
    context_of,
    model_of,
    owned_by_environment,
    sandbox_of,
    template_of,
    timed,
)
from .environment import install_layer, run_env_step, sync_manifest


@timed("apply")
async def apply(state: State, runtime: Runtime[Context]) -> dict:
    ctx = context_of(runtime)
    iteration = state["iteration"]
    plan_dict = state["plans"][-1]
    actions = [Action.model_validate(a) for a in plan_dict["actions"]]
    files = dict(state.get("files", {}))
    changes: dict[str, str | None] = {}
    edits, results, usage = [], [], {}

    template = template_of(state, ctx)
    refused = [a for a in actions if a.path and owned_by_environment(template, a.path)]
    for action in refused:  # writing there would change the cached environment, not the project
        note = f"{action.path} belongs to the environment, not the project: install packages instead"
        kind = "fix" if action.kind == "fix_file" else "delete"
        results.append(_file_result(iteration, kind, action.path, note, 0.0, ok=False))
    actions = [a for a in actions if a not in refused]

    fixes = [a for a in actions if a.kind == "fix_file"]
    if fixes:
        model, recorder = model_of(ctx)
        limit = asyncio.Semaphore(max(1, ctx.max_concurrency))

        async def fix(action: Action) -> tuple[Action, str, dict, float]:
            async with limit:
                started = time.monotonic()
                key = f"fix_file:{iteration}:{action.path}"
                text, used = await ask_text(model, prompts.fix_file(state, template, action), key=key, recorder=recorder)
                return action, prompts.strip_fences(text), used, time.monotonic() - started

        for action, content, used, seconds in await asyncio.gather(*(fix(a) for a in fixes)):
            for name, value in used.items():
                usage[name] = usage.get(name, 0) + value
            before = files.get(action.path)
            changed = content != before
            if changed:
                edits.append(make_edit(iteration, action.path, before, content, action.instructions))
                files[action.path] = changes[action.path] = content
            results.append(_file_result(iteration, "fix", action.path, "changed" if changed else "unchanged", seconds))

    for action in (a for a in actions if a.kind == "delete_file"):
        if action.path in files:
            edits.append(make_edit(iteration, action.path, files.pop(action.path), None, action.instructions))
            changes[action.path] = None
            results.append(_file_result(iteration, "delete", action.path, "deleted", 0.0))
        else:
            results.append(_file_result(iteration, "delete", action.path, "no such file", 0.0, ok=False))

    layers: list[Layer] = []
    steps = [a for a in actions if a.kind in ("install", "command")]
    if steps:
        box = await sandbox_of(state, ctx, files)
        for action in steps:
            if action.kind == "install":
                layer = install_layer(action.packages, iteration)
            else:
                # A command sees the project: the files it ran against are part of its cache key.
                layer = Layer(kind="command", spec=action.command, iteration=iteration, workspace=digest(files))
            added, result = await run_env_step(box, layer, ctx)
            layers += [added] if added else []
            results.append(result)
        if any(layer["kind"] == "install" for layer in layers):
            synced, synced_edits = await sync_manifest(box, template, files, iteration)
            files.update(synced)
            changes.update(synced)
            edits += synced_edits

    return {"files": changes, "edits": edits, "layers": layers, "action_results": results, "usage": usage}


def _file_result(iteration: int, kind: str, path: str, note: str, seconds: float, ok: bool = True) -> ActionResult:
    return ActionResult(
        iteration=iteration, kind=kind, target=path, ok=ok, exit_code=None, output=note, duration=round(seconds, 3)
    )
