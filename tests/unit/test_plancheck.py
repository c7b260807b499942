"""A plan checked against the tree: what cannot be carried out is refused, the rest runs."""

from __future__ import annotations

from devlooper import budgets
from devlooper.plancheck import check_debug_plan, check_file_list, os_limits, too_large
from devlooper.schemas import Action
from devlooper.templates import get_template

PYTHON = get_template("python")
REACT = get_template("react")  # links node_modules into the environment
FILES = {"adder.py": "x\n", "utils": "a file\n", "pkg/core.py": "y\n", "tests/test_adder.py": "z\n"}


def fix(path: str, instructions: str = "change it") -> Action:
    return Action(kind="fix_file", path=path, instructions=instructions)


def delete(path: str) -> Action:
    return Action(kind="delete_file", path=path)


def refused(checked) -> dict[str, str]:
    return {r["target"]: r["output"] for r in checked.refused}


def test_a_plan_over_the_action_cap_keeps_the_first_and_refuses_the_rest_in_one_result():
    actions = [fix(f"notes/n{i}.txt") for i in range(500)]
    checked = check_debug_plan(actions, FILES, PYTHON, 3)
    assert [a.path for a in checked.actions] == [f"notes/n{i}.txt" for i in range(budgets.MAX_PLAN_ACTIONS)]
    [result] = checked.refused
    assert result["iteration"] == 3 and result["kind"] == "plan" and not result["ok"]
    assert "500 actions" in result["output"] and "MAX_PLAN_ACTIONS" in result["output"]
    assert f"notes/n{budgets.MAX_PLAN_ACTIONS}.txt" in result["output"]  # it names what did not run
    assert len(result["output"]) < 1_000  # bounded, however long the plan


def test_two_fixes_of_one_file_become_one_call_with_both_instructions():
    checked = check_debug_plan(
        [fix("adder.py", "use +"), Action(kind="command", command="true"), fix("adder.py", "add a docstring")],
        FILES, PYTHON, 1,
    )
    assert [a.kind for a in checked.actions] == ["fix_file", "command"]
    assert checked.actions[0].instructions == "1. use +\n2. add a docstring"
    assert checked.merged == {"adder.py": 2} and not checked.refused
    three = check_debug_plan([fix("adder.py", "a"), fix("adder.py", "b"), fix("adder.py", "c")], FILES, PYTHON, 1)
    assert three.actions[0].instructions == "1. a\n2. b\n3. c" and three.merged == {"adder.py": 3}


def test_a_fix_and_a_delete_of_one_file_keep_the_first():
    checked = check_debug_plan([fix("adder.py"), delete("adder.py")], FILES, PYTHON, 1)
    assert [(a.kind, a.path) for a in checked.actions] == [("fix_file", "adder.py")]
    assert "fix adder.py is already in this plan" in refused(checked)["adder.py"]


def test_a_file_where_a_directory_must_go_and_a_directory_where_a_file_must_go():
    plan = [fix("utils/__init__.py"), fix("pkg"), fix("tests"), fix("pkg/core.py/x.py"), fix("adder.py")]
    checked = check_debug_plan(plan, FILES, PYTHON, 1)
    assert [a.path for a in checked.actions] == ["adder.py"]  # the rest of the plan runs
    why = refused(checked)
    assert "utils is a file; utils/__init__.py needs it to be a directory" in why["utils/__init__.py"]
    assert "pkg is a directory" in why["pkg"] and "tests is a directory" in why["tests"]
    assert "pkg/core.py is a file" in why["pkg/core.py/x.py"]
    assert all(r["kind"] == "fix" and r["exit_code"] is None for r in checked.refused)


def test_conflicts_inside_one_plan():
    checked = check_debug_plan([fix("lib"), fix("lib/a.py"), fix("b/c.py"), fix("b")], {}, PYTHON, 1)
    assert [a.path for a in checked.actions] == ["lib", "b/c.py"]
    assert set(refused(checked)) == {"lib/a.py", "b"}


def test_a_file_deleted_by_the_plan_may_become_a_directory_but_not_the_reverse():
    ok = check_debug_plan([delete("utils"), fix("utils/__init__.py")], FILES, PYTHON, 1)
    assert not ok.refused and len(ok.actions) == 2
    # Deleting every file of pkg leaves the directory in a workspace: no file can take its place.
    no = check_debug_plan([delete("pkg/core.py"), fix("pkg")], FILES, PYTHON, 1)
    assert "pkg is a directory" in refused(no)["pkg"]


def test_names_and_paths_longer_than_the_os_allows():
    long_name = "a" * 300 + ".py"
    checked = check_debug_plan([fix(long_name), fix("ok.py")], FILES, PYTHON, 1)
    assert [a.path for a in checked.actions] == ["ok.py"]
    assert "303 bytes long; a name may hold 255" in refused(checked)[long_name]
    assert os_limits("é" * 128) is not None  # 256 bytes in UTF-8: the limit is in bytes
    assert os_limits("/".join(["d" * 200] * 6)) is not None  # every name fits, the path does not
    assert os_limits("a/" * 100 + "b.py") is None


def test_environment_paths_and_the_file_cap():
    checked = check_debug_plan([fix("node_modules/x/index.js"), delete("node_modules/y")], {}, REACT, 1)
    assert not checked.actions and len(checked.refused) == 2
    assert "belongs to the environment" in checked.refused[0]["output"]
    many = [fix(f"m{i}.py") for i in range(budgets.MAX_PLAN_FILES + 3)]
    capped = check_debug_plan(many, {}, PYTHON, 1)
    if budgets.MAX_PLAN_FILES + 3 <= budgets.MAX_PLAN_ACTIONS:
        assert len(capped.actions) == budgets.MAX_PLAN_FILES
    else:  # the action cap bites first
        assert len(capped.actions) == budgets.MAX_PLAN_ACTIONS


def test_the_file_cap_counts_files_not_actions(monkeypatch):
    monkeypatch.setattr(budgets, "MAX_PLAN_FILES", 2)
    plan = [fix("a.py"), fix("a.py", "again"), Action(kind="install", packages=["six"]), fix("b.py"), fix("c.py")]
    checked = check_debug_plan(plan, {}, PYTHON, 1)
    assert [a.path for a in checked.actions] == ["a.py", None, "b.py"]
    assert "MAX_PLAN_FILES" in refused(checked)["c.py"]


def test_the_generation_file_list():
    setup = {"pytest.ini": "[pytest]\n", "conf": "x\n"}
    paths = ["pkg/core.py", "conf/settings.py", "pkg", "pytest.ini", "b" * 256, "tests/test_core.py"]
    kept, refusals = check_file_list(paths, setup, PYTHON)
    assert kept == ["pkg/core.py", "pytest.ini", "tests/test_core.py"]  # a planned file may replace a setup file
    assert {r["target"] for r in refusals} == {"conf/settings.py", "pkg", "b" * 256}
    assert all(r["iteration"] == 0 and not r["ok"] for r in refusals)


def test_a_file_over_the_byte_cap_is_too_large():
    assert too_large("x" * budgets.MAX_FILE_BYTES) is None
    assert "a file may hold" in too_large("x" * (budgets.MAX_FILE_BYTES + 1))
    assert too_large("é" * (budgets.MAX_FILE_BYTES // 2 + 1)) is not None  # bytes, not characters


def test_a_directory_whose_files_were_deleted_earlier_is_still_a_directory():
    # pkg/core.py was deleted at an earlier iteration: pkg may remain as an empty directory.
    checked = check_debug_plan([fix("pkg"), fix("pkg/new.py")], {"adder.py": "x\n"}, PYTHON, 2, {"pkg/core.py"})
    assert [a.path for a in checked.actions] == ["pkg/new.py"]
    assert "pkg is a directory" in refused(checked)["pkg"]
