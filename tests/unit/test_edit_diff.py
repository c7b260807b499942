"""The diff recorded with every edit: a correct unified diff of the change."""

import difflib
import random
import re

from devlooper.memory import make_edit

HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def patched(before: str, diff: str) -> str:
    """``before`` with the unified diff's hunks applied; every context and removed line must match."""
    old, out, at = before.splitlines(keepends=True), [], 0
    lines = diff.splitlines(keepends=True)[2:]  # past the ---/+++ header
    for line in lines:
        if m := HUNK.match(line):
            start = int(m[1]) - (1 if m[2] != "0" else 0)
            out += old[at:start]
            at = start
        elif line[0] in " -":
            assert old[at] == line[1:], (old[at], line)
            at += 1
            if line[0] == " ":
                out.append(line[1:])
        else:
            assert line[0] == "+"
            out.append(line[1:])
    return "".join(out + old[at:])


def code(rng: random.Random, n: int) -> list[str]:
    # Blank and comment-only lines between functions: the lines a diff matches least cleanly.
    out = []
    for k in range(n):
        out += [f"def f{k}(x):\n", f"    return x + {rng.randint(0, 3)}\n", "\n", "# --\n" if rng.random() < 0.3 else "\n"]
    return out


def test_applying_an_edits_diff_to_the_old_content_gives_the_new():
    rng = random.Random(7)
    for _ in range(200):
        lines = code(rng, rng.randint(0, 40))
        after = list(lines)
        for _ in range(rng.randint(1, 8)):
            i = rng.randint(0, len(after))
            choice = rng.random()
            if choice < 0.4 and after:
                after[min(i, len(after) - 1)] = f"    return x - {rng.randint(0, 9)}\n"
            elif choice < 0.7:
                after.insert(i, rng.choice(["\n", "# note\n", f"y = {i}\n"]))
            elif after:
                del after[min(i, len(after) - 1)]
        before, new = "".join(lines), "".join(after)
        edit = make_edit(1, "m.py", before, new, "a fix")
        if before == new:
            assert edit["diff"] == ""
            continue
        assert patched(before, edit["diff"]) == new
        removed = sum(1 for ln in edit["diff"].splitlines()[2:] if ln.startswith("-"))
        added = sum(1 for ln in edit["diff"].splitlines()[2:] if ln.startswith("+"))
        assert (edit["added"], edit["removed"]) == (added, removed)


def test_without_blank_lines_the_diff_is_difflibs():
    before = "".join(f"line {k}\n" for k in range(30))
    after = before.replace("line 7\n", "line seven\n").replace("line 20\n", "")
    expected = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), "a/m.py", "b/m.py"))
    assert make_edit(1, "m.py", before, after, "")["diff"] == expected


def test_a_new_and_a_deleted_file_diff_against_dev_null():
    created = make_edit(1, "m.py", None, "a\n\nb\n", "")
    assert created["diff"].startswith("--- /dev/null\n+++ b/m.py\n@@ -0,0 +1,3 @@\n")
    deleted = make_edit(1, "m.py", "a\n\nb\n", None, "")
    assert deleted["diff"].startswith("--- a/m.py\n+++ /dev/null\n@@ -1,3 +0,0 @@\n")
