"""Edit history: what each iteration changed.

Every file change is recorded with content hashes and a unified diff, so later
steps (and loop detection) compare states of the code, not just actions. How
the history is shown to the model is built with every other prompt, in
``prompts.history``.
"""

from __future__ import annotations

import difflib
import hashlib

from .budgets import MAX_DIFF_CHARS
from .bounded import clip
from .state import FileEdit

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
    added, removed = count_lines(diff)
    return FileEdit(
        iteration=iteration,
        path=path,
        before=content_hash(before),
        after=content_hash(after),
        # Every checkpoint stores every edit: a bounded excerpt is enough to read, and
        # the hashes (what loop detection compares) and line counts stay exact.
        diff=clip(diff, MAX_DIFF_CHARS)[0],
        reason=reason,
        added=added,
        removed=removed,
    )


def count_lines(diff: str) -> tuple[int, int]:
    lines = diff.splitlines()
    added = sum(1 for ln in lines if ln.startswith("+") and not ln.startswith("+++"))
    removed = sum(1 for ln in lines if ln.startswith("-") and not ln.startswith("---"))
    return added, removed
