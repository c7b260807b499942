"""apply: carry out the debug plan.

The plan is first checked against the tree (``plancheck``): what cannot be
carried out is refused and fed back. File fixes are model calls that run
concurrently (a file over ``MAX_FILE_BYTES`` is refused); deletes are
immediate; both are recorded as edits. Installs and commands then run in
order as environment layers; a failure is recorded for the next diagnosis,
never raised.
"""

from __future__ import annotations

import asyncio
import time

from langgraph.runtime import Runtime

from .. import prompts
from ..approval import command_refusals
from ..context import Context
from ..loops import track_best
from ..memory import make_edit
from ..models import ask_text
from ..docs import read_docs
from ..patches import PatchError, apply_patch
from ..plancheck import check_debug_plan, refusal, too_large
from ..schemas import Action
from ..state import ActionResult, Layer, State, merge_files
from .common import (
    build_prompt,
    context_of,
    model_of,
    ranker_of,
    sandbox_of,
    template_of,
    timed,
)
from .environment import command_layer, install_layer, run_env_step, settle_step, sync_manifest


@timed("apply")
async def apply(state: State, runtime: Runtime[Context]) -> dict:
    ctx = context_of(runtime)
    iteration = state["iteration"]
    plan_dict = state["plans"][-1]
    actions = [Action.model_validate(a) for a in plan_dict["actions"]]
    files = dict(state.get("files", {}))
    changes: dict[str, str | None] = {}
    edits, usage = [], {}

    template = template_of(state, ctx)
    # Checked against the tree before anything is written: what cannot be carried
    # out (or would leave the thread unable to go on) is refused, the rest runs.
    earlier = {e["path"] for e in state.get("edits", [])}  # deleted files may have left directories
    checked = check_debug_plan(actions, files, template, iteration, earlier)
    actions, results = checked.actions, list(checked.refused)

    fixes = [a for a in actions if a.kind == "fix_file"]
    if fixes:
        model, recorder = model_of(ctx)
        ranker = ranker_of(ctx)
        limit = asyncio.Semaphore(max(1, ctx.max_concurrency))

        async def fix(action: Action) -> tuple[Action, str | None, str, dict, float]:
            """The file's new content, or None and why the reply could not be used."""
            async with limit:
                started = time.monotonic()
                key = f"fix_file:{iteration}:{action.path}"
                messages = await build_prompt(ranker, prompts.fix_file, state, template, action, ctx.max_prompt_tokens)
                text, used = await ask_text(model, messages, key=key, recorder=recorder)
                if not prompts.fix_as_patch(files, action.path, ctx.max_prompt_tokens):
                    return action, prompts.strip_fences(text), "", used, time.monotonic() - started
                # A file too large to show whole was answered with a search/replace patch.
                try:
                    patched = apply_patch(files[action.path], text)
                except PatchError as exc:
                    return action, None, f"the patch was not applied: {exc}", used, time.monotonic() - started
                return action, patched, "", used, time.monotonic() - started

        for action, content, problem, used, seconds in await asyncio.gather(*(fix(a) for a in fixes)):
            for name, value in used.items():
                usage[name] = usage.get(name, 0) + value
            if content is None:
                results.append(refusal(iteration, "fix", action.path, problem))
                continue
            if why := too_large(content):
                results.append(refusal(iteration, "fix", action.path, why))
                continue
            before = files.get(action.path)
            changed = content != before
            if changed:
                edits.append(make_edit(iteration, action.path, before, content, action.instructions))
                files[action.path] = changes[action.path] = content
            note = "changed" if changed else "unchanged"
            if action.path in checked.merged:
                note += f" ({checked.merged[action.path]} fix_file actions on this path were merged into one call)"
            results.append(_file_result(iteration, "fix", action.path, note, seconds))

    for action in (a for a in actions if a.kind == "delete_file"):
        if action.path in files:
            edits.append(make_edit(iteration, action.path, files.pop(action.path), None, action.instructions))
            changes[action.path] = None
            results.append(_file_result(iteration, "delete", action.path, "deleted", 0.0))
        else:
            results.append(_file_result(iteration, "delete", action.path, "no such file", 0.0, ok=False))

    layers: list[Layer] = []
    # The command-approval hook: what the policy or a person refused is not run; its
    # refusal goes back to the model as data (approval.command_refusals).
    refused = command_refusals(state, ctx, iteration)
    results += [refused[a.command] for a in actions if a.kind == "command" and a.command in refused]
    actions = [a for a in actions if not (a.kind == "command" and a.command in refused)]
    steps = [a for a in actions if a.kind in ("install", "command", "read_docs")]
    if steps:
        box = await sandbox_of(state, ctx, files)
        for action in steps:
            if action.kind == "read_docs":  # reads the environment, changes nothing
                results.append(await read_docs(box, template, action, iteration))
                continue
            if action.kind == "install":
                layer = install_layer(action.packages, iteration)
            else:
                layer = command_layer(action.command, iteration, files)
            added, result = await run_env_step(box, layer, ctx)
            # The state is the truth: a command's changes to the project become edits.
            taken, taken_edits, result = await settle_step(box, layer, added, result, files)
            files = merge_files(files, taken)
            changes.update(taken)
            edits += taken_edits
            layers += [added] if added else []
            results.append(result)
        if any(layer["kind"] == "install" for layer in layers):
            synced, synced_edits = await sync_manifest(box, template, files, iteration)
            files.update(synced)
            changes.update(synced)
            edits += synced_edits
        await box.sync_files(files)  # the step ends with the sandbox equal to the state

    update = {"files": changes, "edits": edits, "layers": layers, "action_results": results, "usage": usage}
    if state.get("best") and changes:
        # The best run keeps only the files that now differ from the current ones.
        update["best"] = track_best(state["best"], state.get("files", {}), changes)
    return update


def _file_result(iteration: int, kind: str, path: str, note: str, seconds: float, ok: bool = True) -> ActionResult:
    return ActionResult(
        iteration=iteration, kind=kind, target=path, ok=ok, exit_code=None, output=note, duration=round(seconds, 3)
    )
