"""What bounds the state and the prompts: clipped diffs, excerpts of older test
output, the best run kept as a delta, and the character cap on every prompt."""

from __future__ import annotations

import random

from devlooper import budgets, prompts
from devlooper.loops import best_of, restore_best, track_best
from devlooper.memory import content_hash, make_edit
from devlooper.prompts.history import render_history
from devlooper.schemas import Action
from devlooper.state import add_runs, merge_files
from devlooper.templates import get_template

PYTHON = get_template("python")


def test_a_diff_is_clipped_and_its_hashes_stay_exact():
    before = "".join(f"line {i}\n" for i in range(20_000))
    after = before.replace("line", "LINE")
    edit = make_edit(1, "big.py", before, after, "rename")
    assert len(edit["diff"]) < budgets.MAX_DIFF_CHARS + 100
    assert "characters dropped" in edit["diff"] and edit["diff"].startswith("--- a/big.py")
    assert edit["before"] == content_hash(before) and edit["after"] == content_hash(after)
    small = make_edit(1, "a.py", "x = 1\n", "x = 2\n", "r")
    assert "-x = 1" in small["diff"] and "dropped" not in small["diff"]


def run(iteration: int, output: str) -> dict:
    return {
        "iteration": iteration, "exit_code": 1, "timed_out": False, "output": output, "dropped": 0,
        "duration": 0.1, "passed": 0, "failed": 1, "failures": [],
    }


def test_older_test_runs_keep_an_excerpt_and_the_newest_keep_their_output():
    runs: list = []
    failures = [{"name": f"test_{k}", "message": "E" * 5_000} for k in range(100)]
    for i in range(1, 6):
        runs = add_runs(runs, [{**run(i, f"START {i}\n" + "noise\n" * 10_000 + f"END {i}\n"), "failures": failures}])
    full = runs[-budgets.FULL_OUTPUT_RUNS:]
    old = runs[: -budgets.FULL_OUTPUT_RUNS]
    assert all(len(r["output"]) > 60_000 and r["dropped"] == 0 and r["failures"] == failures for r in full)
    for r in old:
        assert len(r["output"]) < budgets.OLD_OUTPUT_CHARS + 100 and r["dropped"] > 0
        assert [f["name"] for f in r["failures"]] == [f"test_{k}" for k in range(budgets.OLD_FAILURES_KEPT)]
        assert all(len(f["message"]) < budgets.OLD_FAILURE_CHARS + 100 for f in r["failures"])
        assert r["output"].startswith(f"START {r['iteration']}") and r["output"].endswith(f"END {r['iteration']}\n")
    assert add_runs(old, []) == old  # an excerpt is not clipped again
    assert [r["iteration"] for r in runs] == [1, 2, 3, 4, 5]


def test_the_best_run_is_restored_exactly_and_stores_only_what_differs():
    rng = random.Random(7)
    files = {f"m{i}.py": f"v0 {i}\n" for i in range(10)}
    best, snapshot = best_of(run(1, ""), files, [{"kind": "install", "spec": "six", "iteration": 0}]), dict(files)
    assert all(content is None for content in best["files"].values())  # no second copy of the project
    for step in range(200):
        changes: dict = {}
        for _ in range(rng.randint(1, 4)):
            path = f"m{rng.randint(0, 13)}.py"
            roll = rng.random()
            changes[path] = None if roll < 0.2 else snapshot.get(path) if roll < 0.4 else f"v{step} {path}\n"
        best = track_best(best, files, changes)
        files = merge_files(files, changes)
        assert restore_best({"best": best, "files": files})[0] == snapshot
        differ = {p for p in snapshot if files.get(p) != snapshot[p]}
        assert {p for p, c in best["files"].items() if c is not None} == differ
        if rng.random() < 0.1:  # a new best run
            best, snapshot = best_of(run(step, ""), files, []), dict(files)
    assert restore_best({"best": best, "files": files})[1] == best["layers"]


def test_a_best_run_stored_as_a_full_copy_still_restores():
    # Threads checkpointed before the best run was a delta hold every file's content.
    best = {"iteration": 1, "passed": 1, "failed": 1, "files": {"a.py": "old\n"}, "layers": []}
    assert restore_best({"best": best, "files": {"a.py": "new\n", "b.py": "x\n"}})[0] == {"a.py": "old\n"}
    assert track_best(best, {"a.py": "new\n"}, {"a.py": "old\n"})["files"] == {"a.py": None}


def test_refusals_reach_the_history_the_model_sees():
    refused = {
        "iteration": 1, "kind": "fix", "target": "utils/__init__.py", "ok": False, "exit_code": None,
        "output": "refused: utils is a file; utils/__init__.py needs it to be a directory", "duration": 0.0,
    }
    fixed = {**refused, "target": "adder.py", "ok": True, "output": "changed"}
    generation = {**refused, "iteration": 0, "target": "x" * 300, "output": "refused: the name is too long"}
    state = {
        "plans": [{"iteration": 1, "summary": "fix", "actions": []}],
        "action_results": [generation, refused, fixed],
        "edits": [make_edit(1, "adder.py", "a\n", "b\n", "r")],
    }
    text = render_history(state)
    assert "fix utils/__init__.py: FAILED refused: utils is a file" in text
    assert "fix adder.py: ok" not in text and "edited adder.py" in text  # a fix that ran shows as its edit
    assert "generation: fix " in text and "the name is too long" in text


def state_with(files: dict[str, str], output: str = "FAILED test_x\n") -> dict:
    return {
        "prompt": "a tiny library", "files": files, "diagnosis": "it is broken",
        "test_runs": [run(1, output)], "plans": [], "edits": [], "action_results": [],
    }


def test_every_prompt_fits_the_token_budget_with_a_huge_file():
    huge = "HEAD = 1\n" + "x = 0\n" * 100_000 + "TAIL = 2\n"
    state = state_with({"big.py": huge, "adder.py": "def add(a, b):\n    return a - b\n"}, "E" * 200_000)
    built = {
        "fix_file": prompts.fix_file(state, PYTHON, Action(kind="fix_file", path="big.py", instructions="fix it")),
        "diagnose": prompts.diagnose(state, PYTHON, 1_000_000),
        "plan_fix": prompts.plan_fix(state, PYTHON, "", "n" * 300_000),
        "template_repair": prompts.template_repair("a go template", "d" * 500_000, "p", 2, 3),
    }
    for name, messages in built.items():
        assert prompts.size_of(messages) <= budgets.MAX_PROMPT_TOKENS, name
    fix_text = built["fix_file"][-1].content
    # Too large to show whole: its relevant chunks, answered with a search/replace patch.
    assert "too many to show whole" in fix_text and "<<<<<<< SEARCH" in fix_text
    assert "fix it" in fix_text and "it is broken" in fix_text  # the small parts are whole


def test_a_prompt_within_the_cap_is_unchanged():
    state = state_with({"adder.py": "def add(a, b):\n    return a - b\n"})
    action = Action(kind="fix_file", path="adder.py", instructions="use +")
    messages = prompts.fix_file(state, PYTHON, action)
    assert "characters dropped" not in messages[-1].content and "return a - b" in messages[-1].content


def test_a_clipped_diff_keeps_its_exact_line_counts():
    before = "".join(f"line {i}\n" for i in range(5_000))
    edit = make_edit(1, "big.py", before, before.replace("line", "LINE"), "rename")
    state = {"plans": [{"iteration": 1, "summary": "rename", "actions": []}], "edits": [edit]}
    assert "edited big.py (+5000 -5000)" in render_history(state)


def test_older_edits_keep_an_excerpt_the_loop_warning_reads_the_same():
    from devlooper.prompts.history import EDIT_EXCERPT
    from devlooper.state import add_edits

    before = "".join(f"line {i}\n" for i in range(2_000))
    old = make_edit(1, "a.py", before, before.replace("line", "LINE"), "r")
    new = make_edit(2, "a.py", before, before.upper(), "r")
    edits = add_edits(add_edits([], [old]), [new])
    assert edits[1] == new  # the newest iteration's edits are whole
    assert len(edits[0]["diff"]) < budgets.OLD_DIFF_CHARS + 100
    assert {k: v for k, v in edits[0].items() if k != "diff"} == {k: v for k, v in old.items() if k != "diff"}
    shown, full = edits[0]["diff"], old["diff"]
    from devlooper.bounded import clip

    half = EDIT_EXCERPT // 2
    assert clip(shown, EDIT_EXCERPT)[0][:half] == clip(full, EDIT_EXCERPT)[0][:half]
    assert clip(shown, EDIT_EXCERPT)[0][-half:] == clip(full, EDIT_EXCERPT)[0][-half:]
    assert add_edits(edits, []) == edits  # an excerpt is not clipped again
