"""Edit history: what each iteration changed, and how it is shown to the model.

Every file change is recorded with content hashes and a unified diff, so later
steps (and loop detection) compare states of the code, not just actions.
"""

from __future__ import annotations

import difflib
import hashlib

from .state import ActionResult, FileEdit, State

HISTORY_BUDGET = 4_000  # characters of history shown to the model


def content_hash(content: str | None) -> str | None:
    return None if content is None else hashlib.sha256(content.encode()).hexdigest()[:16]


def make_edit(iteration: int, path: str, before: str | None, after: str | None, reason: str) -> FileEdit:
    diff = "".join(
        difflib.unified_diff(
            (before or "").splitlines(keepends=True),
            (after or "").splitlines(keepends=True),
            fromfile=f"a/{path}" if before is not None else "/dev/null",
            tofile=f"b/{path}" if after is not None else "/dev/null",
        )
    )
    return FileEdit(
        iteration=iteration,
        path=path,
        before=content_hash(before),
        after=content_hash(after),
        diff=diff,
        reason=reason,
    )


def _diffstat(edit: FileEdit) -> str:
    lines = edit["diff"].splitlines()
    added = sum(1 for ln in lines if ln.startswith("+") and not ln.startswith("+++"))
    removed = sum(1 for ln in lines if ln.startswith("-") and not ln.startswith("---"))
    if edit["after"] is None:
        return f"deleted {edit['path']}"
    if edit["before"] is None:
        return f"created {edit['path']} (+{added})"
    return f"edited {edit['path']} (+{added} -{removed})"


def render_result(r: ActionResult) -> str:
    if r["ok"]:
        return f"{r['kind']} {r['target']}: ok"
    tail = r["output"].strip().splitlines()[-1:] or [""]
    return f"{r['kind']} {r['target']}: FAILED (exit {r['exit_code']}) {tail[0][:200]}"


def render_history(state: State, budget: int = HISTORY_BUDGET) -> str:
    """What earlier iterations tried and what the next test run showed, newest first."""
    runs = {r["iteration"]: r for r in state.get("test_runs", [])}
    plans = {p["iteration"]: p for p in state.get("plans", [])}
    entries = []
    for it in sorted(plans, reverse=True):
        plan = plans[it]
        edits = [_diffstat(e) for e in state.get("edits", []) if e["iteration"] == it]
        results = [render_result(r) for r in state.get("action_results", []) if r["iteration"] == it and r["kind"] != "fix"]
        after = runs.get(it + 1)
        outcome = (
            f"next test run: exit {after['exit_code']}, {after['passed']} passed, {after['failed']} failed"
            if after
            else "not tested yet"
        )
        done = "; ".join(edits + results) or "nothing changed"
        entries.append(f"- iteration {it}: {plan['summary']} -> {done}; {outcome}")
    text, used = [], 0
    for entry in entries:
        if used + len(entry) > budget:
            text.append(f"- ... {len(entries) - len(text)} older iterations omitted")
            break
        text.append(entry)
        used += len(entry)
    return "\n".join(text) or "(this is the first failure)"
