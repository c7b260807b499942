"""design: plan the project in one call; generate: write every file of the plan concurrently.

Two nodes, so that a person can approve, edit or reject the plan in between
(review_plan) without the plan being asked for again when the run resumes.
"""

from __future__ import annotations

import asyncio
import uuid

from langgraph.runtime import Runtime

from .. import prompts
from ..context import Context, settings_of
from ..prompts.history import render_guidance
from ..models import ask_structured, ask_text
from ..plancheck import check_file_list, refusal, too_large
from ..schemas import FileSpec, ProjectPlan
from ..state import State
from .common import (
    context_of,
    model_of,
    require_sandbox,
    sandbox_of,
    sandbox_settings,
    template_of,
    timed,
)
from ..sandboxes.pool import release
from .environment import install_layer, run_env_step, sync_manifest


def request(state: State) -> str:
    """The user's request, with what a person said at a pause (a rejected plan's guidance)."""
    guidance = render_guidance(state)
    return f"{state['prompt']}\n\n{guidance}" if guidance else state["prompt"]


@timed("design")
async def design(state: State, runtime: Runtime[Context]) -> dict:
    ctx = context_of(runtime)
    await require_sandbox(ctx)
    template = template_of(state, ctx)
    model, recorder = model_of(ctx)
    # A plan a person rejected is asked for again, under its own key (cassettes, traces).
    attempt = 1 + sum(1 for d in state.get("decisions", []) if d["moment"] == "plan" and d["verdict"] == "rejected")
    key = "plan_project" if attempt == 1 else f"plan_project:{attempt}"
    plan, usage = await ask_structured(
        model, prompts.plan_project(request(state), template), ProjectPlan, key=key, recorder=recorder,
        mode=ctx.structured_output,
    )
    # The run's settings belong to its thread: recorded at its start (see context_of).
    # (settings_of resolves the output path: off the server's event loop.)
    settings = await asyncio.to_thread(settings_of, ctx)
    return {"project": plan.model_dump(mode="json"), "usage": usage, "settings": settings}


@timed("generate")
async def generate(state: State, runtime: Runtime[Context]) -> dict:
    ctx = context_of(runtime)
    template = template_of(state, ctx)
    model, recorder = model_of(ctx)
    plan, usage = ProjectPlan.model_validate(state["project"]), {}
    prompt = request(state)
    limit = asyncio.Semaphore(max(1, ctx.max_concurrency))

    async def write(spec: FileSpec) -> tuple[str, str, dict]:
        async with limit:
            messages = prompts.generate_file(prompt, template, plan, spec.path, spec.purpose)
            text, used = await ask_text(model, messages, key=f"generate_file:{spec.path}", recorder=recorder)
            return spec.path, prompts.strip_fences(text), used

    # The planned paths are checked against the template's files before anything is
    # written (plancheck); the refused ones are left out of the plan and fed back.
    kept, refused = check_file_list([spec.path for spec in plan.files], template.setup_files, template)
    plan = plan.model_copy(update={"files": [spec for spec in plan.files if spec.path in kept]})
    run_id = state.get("run_id") or uuid.uuid4().hex
    # The sandbox and its environment are built while the model writes the files: the
    # test step that follows finds them ready (the pool keeps the run's sandbox).
    early = {**state, "run_id": run_id, "env_template": template.model_dump(mode="json")}
    warming = asyncio.create_task(sandbox_of(early, ctx, dict(template.setup_files)))
    try:
        written = await asyncio.gather(*(write(spec) for spec in plan.files))
        box = await warming
    except BaseException:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)
        await release(run_id)  # not in the state yet: nothing else would free it
        raise
    oversized = {path: why for path, content, _ in written if (why := too_large(content))}
    refused += [refusal(0, "fix", path, why) for path, why in oversized.items()]
    files = {**template.setup_files, **{path: content for path, content, _ in written if path not in oversized}}
    for _, _, used in written:
        for name, value in used.items():
            usage[name] = usage.get(name, 0) + value

    update: dict = {
        "run_id": run_id,
        "sandbox_settings": sandbox_settings(ctx),
        "template": template.name,
        "env_template": template.model_dump(mode="json"),
        "status": "running",
        "iteration": 0,
        "project": plan.model_dump(mode="json"),
        "files": files,
        "usage": usage,
        "layers": [],
        "action_results": refused,
    }
    if plan.packages:
        box = await sandbox_of({**state, "run_id": run_id, "env_template": update["env_template"]}, ctx, files)
        layer, result = await run_env_step(box, install_layer(plan.packages, 0), ctx)
        update["layers"] = [layer] if layer else []
        update["action_results"] = [*refused, result]
        if layer:
            synced, _ = await sync_manifest(box, template, files, 0)
            update["files"] = {**files, **synced}
        await box.sync_files(update["files"])  # what the install wrote is undone; the manifest is in
    else:
        await box.sync_files(files)  # the live sandbox equals the state after every step
    return update
