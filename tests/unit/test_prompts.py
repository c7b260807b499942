from devlooper import prompts
from devlooper.templates import get_template

FILES = {
    "pkg/core.py": "def f():\n    return 1\n",
    "pkg/util.py": "X = 1\n",
    "tests/test_core.py": "from pkg.core import f\n",
    "README.md": "docs\n",
}


def test_files_named_in_a_traceback_come_first():
    output = 'File "/ws/tests/test_core.py", line 3\nFile "/ws/pkg/core.py", line 2, in f\nAssertionError'
    order = prompts.relevant_files(FILES, output)
    assert order[:2] == ["pkg/core.py", "tests/test_core.py"]  # the fault (last frame) first
    assert order.index("tests/test_core.py") < order.index("README.md")


def test_a_path_counts_as_named_only_as_a_whole_path():
    # "otherpkg/core.py" and "pkg/core.pyc" end or begin with the path but name other files.
    files = {"pkg/core.py": "", "tests/test_core.py": "", "README.md": ""}
    assert prompts.relevant_files(files, "otherpkg/core.py pkg/core.pyc failed")[0] == "tests/test_core.py"
    # A later whole mention counts even after such a partial one.
    order = prompts.relevant_files(files, "otherpkg/core.py failed\nFile /ws/pkg/core.py, line 2")
    assert order[0] == "pkg/core.py"


def test_small_projects_are_shown_whole_and_large_ones_as_the_relevant_chunks():
    from devlooper.prompts.retrieval import relevant_code

    small = relevant_code(FILES, "f", list(FILES), budget=1_000)
    assert all(f"--- {p}\n{c}" in small for p, c in FILES.items())
    funcs = {f"mod{i}.py": "".join(f"def fn_{i}_{j}(x):\n    return x + {j}\n\n\n" for j in range(40)) for i in range(5)}
    shown = relevant_code(funcs, "AssertionError in fn_3_7", list(funcs), budget=3_000)
    assert len(shown) <= 3_000 and "def fn_3_7(x)" in shown
    assert "--- mod3.py (lines " in shown  # a chunk says where it is


def _state(output: str) -> dict:
    return {
        "prompt": "a tiny library",
        "files": FILES,
        "test_runs": [
            {"iteration": 1, "exit_code": 1, "output": output, "dropped": 0, "passed": 2, "failed": 1,
             "failures": [{"name": "tests/test_core.py::test_f", "message": "assert 1 == 2"}], "timed_out": False,
             "duration": 0.1}
        ],
        "iteration": 1,
        "plans": [],
        "edits": [],
        "action_results": [],
    }


def test_diagnose_prompt_is_bounded_and_complete():
    output = "START " + "noise " * 20_000 + " pkg/core.py:2 END"
    messages = prompts.diagnose(_state(output), get_template("python"), output_limit=2_000)
    text = messages[-1].content
    assert "START" in text and "END" in text and "characters dropped" in text
    assert len(text) < 12_000
    assert "--- pkg/core.py" in text
    assert "tests/test_core.py::test_f: assert 1 == 2" in text
    assert "2 passed, 1 failed" in text
    assert "python -m pytest" in messages[0].content  # the system prompt names the test command


def test_diagnose_prompt_shows_what_was_tried():
    state = _state("boom")
    state["test_runs"].append({**state["test_runs"][0], "iteration": 2})
    state["iteration"] = 2
    state["plans"] = [{"iteration": 1, "summary": "install numpy", "actions": []}]
    state["action_results"] = [
        {"iteration": 1, "kind": "install", "target": "numpy", "ok": False, "exit_code": 1,
         "output": "ERROR: No matching distribution found for numpy", "duration": 1.0}
    ]
    text = prompts.diagnose(state, get_template("python"), 2_000)[-1].content
    assert "iteration 1: install numpy" in text
    assert "install numpy: FAILED (exit 1) ERROR: No matching distribution found for numpy" in text


def test_strip_fences():
    assert prompts.strip_fences("```python\nx = 1\n```") == "x = 1\n"
    assert prompts.strip_fences("x = 1") == "x = 1\n"
    assert prompts.strip_fences("```\nfirst\n```\nand prose") == "```\nfirst\n```\nand prose\n"


def test_diagnose_and_plan_see_each_failure_within_a_budget():
    state = _state("F")
    state["diagnosis"] = "f returns 1"
    text = prompts.diagnose(state, get_template("python"), 2_000)[-1].content
    assert "Failing tests (1 failed, 2 passed):\n- tests/test_core.py::test_f: assert 1 == 2" in text
    plan = prompts.plan_fix(state, get_template("python"), "")[-1].content
    assert "- tests/test_core.py::test_f: assert 1 == 2" in plan

    many = [{"name": f"t{i}", "message": "E" * 700} for i in range(100)]
    state["test_runs"][0].update(failed=100, failures=many)
    shown = prompts.diagnose(state, get_template("python"), 2_000)[-1].content
    assert shown.count("- t") < 12 and "more failing tests" in shown
