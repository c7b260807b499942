"""Environment steps shared by the nodes that change the environment (generate, apply):
installs and commands as layers, what they did to the project, and the manifest
that follows them."""

from __future__ import annotations

import shlex

from ..bounded import clip
from ..context import Context
from ..layers import Layer
from ..manifest import build_manifest
from ..memory import make_edit
from ..sandboxes.base import ExecResult, Sandbox
from ..sandboxes.workspace import digest
from ..state import ActionResult, FileEdit, merge_files
from ..templates import EnvTemplate

MANIFEST_DIFF_LIMIT = 4_000  # characters of a manifest edit's diff kept in the state
COMMAND_DIFF_LIMIT = 16_000  # characters of the diff of a file a command changed kept in the state


def install_layer(packages: list[str], iteration: int) -> Layer:
    return Layer(kind="install", spec=" ".join(shlex.quote(p) for p in packages), iteration=iteration)


def command_layer(command: str, iteration: int, files: dict[str, str]) -> Layer:
    """A command sees the project: the files it runs against are part of its cache key."""
    return Layer(kind="command", spec=command, iteration=iteration, workspace=digest(files))


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


async def settle_step(
    box: Sandbox, layer: Layer, added: Layer | None, action: ActionResult, files: dict[str, str]
) -> tuple[dict[str, str | None], list[FileEdit], ActionResult]:
    """After an install or a command the sandbox's project equals the state again.

    A command that succeeded is a deliberate change of the project (a formatter, a
    code generator): what it changed is taken into the state as edits that name it,
    and what cannot be a project file (a link, binary, oversized) is removed and said
    in its result. An install, or a command that failed, changes no project file:
    whatever it wrote is undone by rewriting from the state."""
    if layer["kind"] != "command" or added is None:
        await box.sync_files(files)
        return {}, [], action
    drift = await box.reconcile(files)
    reason = f"made by command `{layer['spec']}`"
    edits = []
    for path, text in sorted(drift.changed.items()):
        edit = make_edit(layer["iteration"], path, files.get(path), text, reason)
        edit["diff"] = clip(edit["diff"], COMMAND_DIFF_LIMIT)[0]
        edits.append(edit)
    notes = [action["output"]]
    if drift.changed:
        after = merge_files(files, drift.changed)
        what = [
            f"{'deleted' if path not in after else 'created' if path not in files else 'changed'} {path}"
            for path in sorted(drift.changed)
        ]
        notes.append(f"[the command changed the project: {', '.join(what)}]")
    if drift.refused:
        notes.append(drift.note())
    return drift.changed, edits, {**action, "output": "\n".join(n for n in notes if n)}


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
