"""generate: plan the project in one call, then write every file concurrently."""

from __future__ import annotations

import asyncio
import uuid

from langgraph.runtime import Runtime

from .. import prompts
from ..context import Context
from ..models import ask_structured, ask_text
from ..sandboxes import sandbox_class
from ..schemas import FileSpec, ProjectPlan
from ..state import State
from .common import (
    context_of,
    model_of,
    owned_by_environment,
    sandbox_of,
    template_of,
    timed,
)
from .environment import install_layer, run_env_step, sync_manifest


@timed("generate")
async def generate(state: State, runtime: Runtime[Context]) -> dict:
    ctx = context_of(runtime)
    # Before the first model call: a server or API run that cannot confine generated
    # code stops here with the reason, as the CLI does before it starts.
    await asyncio.to_thread(sandbox_class(ctx.sandbox).check_config, ctx)  # may probe bubblewrap once
    template = template_of(state, ctx)
    model, recorder = model_of(ctx)
    plan, usage = await ask_structured(
        model, prompts.plan_project(state["prompt"], template), ProjectPlan, key="plan_project", recorder=recorder
    )
    limit = asyncio.Semaphore(max(1, ctx.max_concurrency))

    async def write(spec: FileSpec) -> tuple[str, str, dict]:
        async with limit:
            messages = prompts.generate_file(state["prompt"], template, plan, spec.path, spec.purpose)
            text, used = await ask_text(model, messages, key=f"generate_file:{spec.path}", recorder=recorder)
            return spec.path, prompts.strip_fences(text), used

    # A planned file under node_modules (a link into the environment) is not the project's to write.
    specs = [spec for spec in plan.files if not owned_by_environment(template, spec.path)]
    written = await asyncio.gather(*(write(spec) for spec in specs))
    files = {**template.setup_files, **{path: content for path, content, _ in written}}
    for _, _, used in written:
        for name, value in used.items():
            usage[name] = usage.get(name, 0) + value

    run_id = state.get("run_id") or uuid.uuid4().hex
    update: dict = {
        "run_id": run_id,
        "template": template.name,
        "env_template": template.model_dump(mode="json"),
        "status": "running",
        "iteration": 0,
        "project": plan.model_dump(mode="json"),
        "files": files,
        "usage": usage,
        "layers": [],
        "action_results": [],
    }
    if plan.packages:
        box = await sandbox_of({**state, "run_id": run_id, "env_template": update["env_template"]}, ctx, files)
        layer, result = await run_env_step(box, install_layer(plan.packages, 0), ctx)
        update["layers"] = [layer] if layer else []
        update["action_results"] = [result]
        if layer:
            synced, _ = await sync_manifest(box, template, files, 0)
            update["files"] = {**files, **synced}
    return update
