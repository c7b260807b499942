"""load: improve mode's first step, in place of design and generate.

The input's ``project_files`` become the state's files; the template is the
input's, else the one the project's manifest points to, else the context's.
The dependencies the project declares are installed as the first layer (a
failure is recorded for the diagnosis, never raised); then its tests run before
anything changes.
"""

from __future__ import annotations

import asyncio
import uuid

from langgraph.runtime import Runtime

from ..context import Context, settings_of
from ..errors import ConfigError
from ..improve import declared_packages, detect_template
from ..paths import UnsafePathError, normalize
from ..plancheck import too_large
from ..sandboxes.workspace import ignored
from ..state import State
from ..templates import get_template
from .common import context_of, require_sandbox, sandbox_of, sandbox_settings, timed
from .environment import install_layer, run_env_step

PYTEST_CONFIG = {"pyproject.toml": "[tool.pytest", "setup.cfg": "[tool:pytest]", "tox.ini": "[pytest]"}


def _pytest_configured(files: dict[str, str]) -> bool:
    return any(marker in files.get(name, "") for name, marker in PYTEST_CONFIG.items())


@timed("load")
async def load(state: State, runtime: Runtime[Context]) -> dict:
    ctx = context_of(runtime)
    await require_sandbox(ctx)
    given = state.get("project_files") or {}
    files: dict[str, str] = {}
    for path, text in given.items():
        try:
            clean = normalize(path)
        except UnsafePathError as exc:
            raise ConfigError(f"project_files: {exc}") from None
        if not isinstance(text, str) or (why := too_large(text)):
            raise ConfigError(f"project_files: {path}: {'not text' if not isinstance(text, str) else why}")
        files[clean] = text
    template = get_template(state.get("template") or detect_template(files) or ctx.template)
    files = {p: t for p, t in files.items() if not ignored(p, template.not_project())}
    # The files the test command needs that the project lacks (a jest config); never one
    # that would override the project's own pytest configuration.
    added = {
        p: t for p, t in template.setup_files.items()
        if p not in files and not (p == "pytest.ini" and _pytest_configured(files))
    }
    files.update(added)
    run_id = state.get("run_id") or uuid.uuid4().hex
    update: dict = {
        "run_id": run_id,
        "settings": await asyncio.to_thread(settings_of, ctx),  # it resolves a path
        "sandbox_settings": sandbox_settings(ctx),
        "template": template.name,
        "env_template": template.model_dump(mode="json"),
        "status": "running",
        "iteration": 0,
        "project": {"files": [], "packages": [], "notes": "an existing project (improve mode)"},
        "files": files,
        "layers": [],
        "action_results": [],
        "improve": {"files": len(given), "added_setup_files": sorted(added)},
        "project_files": {},  # every checkpoint would hold the project twice
    }
    packages = declared_packages(files, template.runtime)
    if packages:
        box = await sandbox_of({**state, "run_id": run_id, "env_template": update["env_template"]}, ctx, files)
        layer, result = await run_env_step(box, install_layer(packages, 0), ctx)
        update["layers"] = [layer] if layer else []
        update["action_results"] = [result]
        await box.sync_files(files)  # the install changes the environment, not the project
    return update
