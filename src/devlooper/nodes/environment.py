"""Environment steps shared by the nodes that change the environment (generate, apply):
installs and commands as layers, and the manifest that follows them."""

from __future__ import annotations

import shlex

from ..bounded import clip
from ..context import Context
from ..layers import Layer
from ..manifest import build_manifest
from ..memory import make_edit
from ..sandboxes.base import ExecResult, Sandbox
from ..state import ActionResult, FileEdit
from ..templates import EnvTemplate

MANIFEST_DIFF_LIMIT = 4_000  # characters of a manifest edit's diff kept in the state


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
