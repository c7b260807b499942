"""Validate a plan against the current tree before anything is written.

A model's plan is data. Some of what it asks for cannot be carried out, and
some would leave the thread unable to go on: a file where a directory must go
(``utils/__init__.py`` while ``utils`` is a file), a directory where a file
must go, a name longer than the OS allows, two rewrites of one file that each
start from the original. Every sandbox sync and every resume would then fail
on the same write. So each such action is refused here, with the reason, and
the rest of the plan runs; the refusals go back to the model as data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import budgets
from .nodes.common import owned_by_environment
from .schemas import Action
from .state import ActionResult
from .templates.base import EnvTemplate


def refusal(iteration: int, kind: str, target: str, why: str) -> ActionResult:
    """What the model is told about an action that was not carried out."""
    return ActionResult(
        iteration=iteration, kind=kind, target=target, ok=False, exit_code=None, output=f"refused: {why}", duration=0.0
    )


def os_limits(path: str) -> str | None:
    """Why ``path`` cannot be created on the OS (a name or the path too long), or None."""
    for name in path.split("/"):
        size = len(name.encode())
        if size > budgets.MAX_NAME_BYTES:
            return f"the name {name[:40]!r}... is {size} bytes long; a name may hold {budgets.MAX_NAME_BYTES}"
    size = len(path.encode())
    if size > budgets.MAX_PATH_BYTES:
        return f"the path is {size} bytes long; a project path may hold {budgets.MAX_PATH_BYTES}"
    return None


def too_large(content: str) -> str | None:
    """Why a file the model wrote is not kept (more bytes than a file may hold), or None."""
    size = len(content.encode())
    if size > budgets.MAX_FILE_BYTES:
        return f"the model wrote {size} bytes; a file may hold {budgets.MAX_FILE_BYTES}, so it was not written"
    return None


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


class Tree:
    """The project's files and the directories they imply, as a plan changes them."""

    def __init__(self, files: set[str], deleted: set[str] = frozenset(), earlier: set[str] = frozenset()) -> None:
        # A file the plan deletes is gone before anything is written (a sync removes
        # first), so a directory may take its place. A directory stays when every file
        # in it is deleted (an empty directory remains in a live workspace), so a file
        # may not take the place of a directory that held files now or ``earlier``.
        self.files = set(files) - set(deleted)
        self.dirs = {a for p in (*files, *earlier) for a in _ancestors(p)}

    def conflict(self, path: str) -> str | None:
        """Why a file cannot be written at ``path`` in this tree, or None."""
        if path in self.dirs:
            return f"{path} is a directory; a file cannot take its place"
        for ancestor in _ancestors(path):
            if ancestor in self.files:
                return f"{ancestor} is a file; {path} needs it to be a directory"
        return None

    def add(self, path: str) -> None:
        self.files.add(path)
        self.dirs.update(_ancestors(path))


@dataclass
class CheckedPlan:
    actions: list[Action]  # what may run, in the plan's order
    refused: list[ActionResult] = field(default_factory=list)
    merged: dict[str, int] = field(default_factory=dict)  # path -> fix_file actions merged into one call


def cap_actions(actions: list[Action], iteration: int) -> CheckedPlan:
    """The first ``MAX_PLAN_ACTIONS`` actions; the rest refused in one result (not one each)."""
    cap = budgets.MAX_PLAN_ACTIONS
    if len(actions) <= cap:
        return CheckedPlan(list(actions))
    rest = actions[cap:]
    named, _ = _listing([a.describe() for a in rest])
    why = (
        f"the plan held {len(actions)} actions and a plan may hold {cap} (MAX_PLAN_ACTIONS): "
        f"the first {cap} ran, these {len(rest)} did not: {named}"
    )
    return CheckedPlan(list(actions[:cap]), [refusal(iteration, "plan", "debug plan", why)])


def _listing(items: list[str], limit: int = 600) -> tuple[str, int]:
    text, shown = "", 0
    for item in items:
        if len(text) + len(item) > limit:
            return f"{text}, and {len(items) - shown} more", len(items) - shown
        text, shown = f"{text}, {item}" if text else item, shown + 1
    return text, 0


def check_debug_plan(
    actions: list[Action], files: dict[str, str], template: EnvTemplate, iteration: int, earlier: set[str] = frozenset()
) -> CheckedPlan:
    """What of a debug plan may run against ``files``, and what is refused, with why.
    ``earlier``: paths of files the project held before (edits, deleted ones included)."""
    checked = cap_actions(actions, iteration)
    deleted = {a.path for a in checked.actions if a.kind == "delete_file" and a.path in files}
    tree = Tree(set(files), deleted, earlier)
    kept: list[Action] = []
    first: dict[str, int] = {}  # path -> index in kept of its first file action
    for action in checked.actions:
        if action.path is None:  # installs and commands
            kept.append(action)
            continue
        path, kind = action.path, "fix" if action.kind == "fix_file" else "delete"
        why = _path_problem(path, template)
        if why is None and path in first:
            earlier = kept[first[path]]
            if earlier.kind == action.kind == "fix_file":
                # Two rewrites of one file would each start from the original and the last
                # would win: one call with both instructions writes what both asked for.
                count = checked.merged.get(path, 1) + 1
                joined = earlier.instructions if count > 2 else f"1. {earlier.instructions}"
                kept[first[path]] = earlier.model_copy(update={"instructions": f"{joined}\n{count}. {action.instructions}"})
                checked.merged[path] = count
                continue
            why = f"{earlier.describe()} is already in this plan; one action per file"
        if why is None and len(first) >= budgets.MAX_PLAN_FILES:
            why = f"a plan may change {budgets.MAX_PLAN_FILES} files (MAX_PLAN_FILES)"
        if why is None and action.kind == "fix_file":
            why = tree.conflict(path)
        if why:
            checked.refused.append(refusal(iteration, kind, path, why))
            continue
        first[path] = len(kept)
        kept.append(action)
        if action.kind == "fix_file":
            tree.add(path)
    checked.actions = kept
    return checked


def check_file_list(
    paths: list[str], files: dict[str, str], template: EnvTemplate, iteration: int = 0
) -> tuple[list[str], list[ActionResult]]:
    """The paths of a generation plan that may be written next to ``files`` (the
    template's setup files, which a planned file of the same path replaces), in
    order, and the refusals of the others."""
    tree = Tree(set(files))
    kept: list[str] = []
    refused: list[ActionResult] = []
    for path in paths:
        why = _path_problem(path, template)
        if why is None and path in kept:
            why = "listed twice in the plan"
        if why is None and len(kept) >= budgets.MAX_PLAN_FILES:
            why = f"a plan may write {budgets.MAX_PLAN_FILES} files (MAX_PLAN_FILES)"
        if why is None:
            why = tree.conflict(path)
        if why:
            refused.append(refusal(iteration, "fix", path, why))
            continue
        kept.append(path)
        tree.add(path)
    return kept, refused


def _path_problem(path: str, template: EnvTemplate) -> str | None:
    if owned_by_environment(template, path):
        return f"{path} belongs to the environment, not the project: install packages instead"
    return os_limits(path)
