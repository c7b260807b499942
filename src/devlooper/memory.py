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
    diff = unified_diff(
        (before or "").splitlines(keepends=True),
        (after or "").splitlines(keepends=True),
        fromfile=f"a/{path}" if before is not None else "/dev/null",
        tofile=f"b/{path}" if after is not None else "/dev/null",
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


def unified_diff(a: list[str], b: list[str], fromfile: str, tofile: str, context: int = 3) -> str:
    """``difflib.unified_diff`` of two lists of lines, with blank and ``#``-only lines as
    junk (``difflib.IS_LINE_JUNK``, as ``difflib.ndiff`` does).

    ``unified_diff`` takes no junk: every blank line of a file is then a match candidate
    for every other, and a rewrite of a few KB of code with blank lines between its
    functions took 5-25 ms per file, the largest cost of an apply step. Junk lines are
    still matched next to the lines around them, so the diff is as correct, at times a
    line or two longer where a change ends among blank lines."""
    matcher = difflib.SequenceMatcher(difflib.IS_LINE_JUNK, a, b)
    out: list[str] = []
    for group in matcher.get_grouped_opcodes(context):
        if not out:
            out += [f"--- {fromfile}\n", f"+++ {tofile}\n"]
        first, last = group[0], group[-1]
        out.append(f"@@ -{_hunk_range(first[1], last[2])} +{_hunk_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [" " + line for line in a[i1:i2]]
                continue
            if tag in ("replace", "delete"):
                out += ["-" + line for line in a[i1:i2]]
            if tag in ("replace", "insert"):
                out += ["+" + line for line in b[j1:j2]]
    return "".join(out)


def _hunk_range(start: int, stop: int) -> str:
    """A hunk's line range as unified diffs write it (1-based; an empty range names the line before)."""
    beginning, length = start + 1, stop - start
    if length == 1:
        return f"{beginning}"
    if not length:
        beginning -= 1
    return f"{beginning},{length}"


def count_lines(diff: str) -> tuple[int, int]:
    lines = diff.splitlines()
    added = sum(1 for ln in lines if ln.startswith("+") and not ln.startswith("+++"))
    removed = sum(1 for ln in lines if ln.startswith("-") and not ln.startswith("---"))
    return added, removed
