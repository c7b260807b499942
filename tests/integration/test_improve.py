"""Improve mode through the CLI: an existing project of each template with a failing test
is made green; a green one gets a new request; the source folder is byte-identical
afterwards; --in-place on a git repository leaves a branch whose commits each pass the
tests. A scripted model; the real local sandbox and each template's real test runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devlooper import cli
from devlooper.templates import get_template

# The file each template's example project keeps its code in, and a manifest that names the template.
SOURCE = {"python": "calc.py", "react": "src/Counter.jsx", "rust": "src/lib.rs"}
MANIFEST = {
    "python": {"pyproject.toml": '[project]\nname = "calc"\nversion = "0.1.0"\ndependencies = []\n'},
    "react": {"package.json": '{"name": "counter", "private": true}\n'},
    "rust": {},  # the template's own Cargo.toml
}
NEEDS = {"react": "npm", "rust": "cargo"}


def example(name: str) -> dict[str, str]:
    """The template's example project, as a user would have it, with its manifest."""
    template = get_template(name)
    files = {**(template.setup_files if name == "rust" else {}), **template.example_files, **MANIFEST[name]}
    files[".gitignore"] = "*.log\n"
    return files


def broken(files: dict[str, str], path: str) -> dict[str, str]:
    return {**files, path: files[path].replace(" + ", " - ", 1)}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "debug.log").write_text("ignored by .gitignore: never loaded\n")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def cassette(tmp_path: Path, **calls) -> str:
    path = tmp_path / "cassette.json"
    path.write_text(json.dumps({"version": 1, "calls": [{"key": k, "reply": v} for k, v in calls.items()]}))
    return f"replay:{path}"


def run_cli(capsys, tmp_path: Path, *args: str) -> tuple[int, str]:
    code = cli.main(["run", *args, "--db", str(tmp_path / "db.sqlite")])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(autouse=True)
def _wide_console():
    width = cli.console.width
    cli.console.width = 1_000
    yield
    cli.console.width = width


@pytest.mark.parametrize("name", ["python", "react", "rust"])
def test_a_red_project_of_each_template_is_made_green_and_its_folder_left_as_it_was(name, capsys, tmp_path):
    if name in NEEDS and shutil.which(NEEDS[name]) is None:
        pytest.skip(f"the {name} template needs {NEEDS[name]}")
    good = example(name)
    source = write_tree(tmp_path / "project", broken(good, SOURCE[name]))
    before = snapshot(source)
    fix = {"summary": "undo the sign error", "actions": [
        {"kind": "fix_file", "path": SOURCE[name], "instructions": "use + again"}]}
    model = cassette(tmp_path, **{"diagnose:1": "the sign is wrong", "plan:1": fix,
                                  f"fix_file:1:{SOURCE[name]}": good[SOURCE[name]]})
    out = tmp_path / "out"
    code, text = run_cli(capsys, tmp_path, "make the tests pass", "--from", str(source), "--model", model,
                         "--output", str(out))
    assert code == 0, text
    assert f"template [cyan]{name}" in text or f"template {name}" in text  # detected from the manifest
    report = json.loads((out / ".devlooper" / "report.json").read_text())
    assert [r["exit_code"] == 0 for r in report["test_runs"]] == [False, True]  # its tests ran first
    assert (out / SOURCE[name]).read_text() == good[SOURCE[name]]
    assert "debug.log" not in report["files"]
    assert snapshot(source) == before


PYTHON_SUB = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
PYTHON_SUB_TESTS = (
    "from calc import add, sub\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_sub():\n    assert sub(5, 3) == 2\n"
)


def test_a_green_project_gets_the_request_carried_out(capsys, tmp_path):
    source = write_tree(tmp_path / "project", example("python"))
    before = snapshot(source)
    plan = {"summary": "add sub() and its test", "actions": [
        {"kind": "fix_file", "path": "calc.py", "instructions": "add sub"},
        {"kind": "fix_file", "path": "tests/test_calc.py", "instructions": "test sub"}]}
    model = cassette(tmp_path, **{"diagnose:1": "sub() is missing", "plan:1": plan, "fix_file:1:calc.py": PYTHON_SUB,
                                  "fix_file:1:tests/test_calc.py": PYTHON_SUB_TESTS})
    out = tmp_path / "out"
    code, text = run_cli(capsys, tmp_path, "add a sub(a, b) function", "--from", str(source), "--model", model,
                         "--output", str(out))
    assert code == 0, text
    report = json.loads((out / ".devlooper" / "report.json").read_text())
    # Green before any change, and green again with the request done (one more test).
    assert [(r["exit_code"], r["passed"]) for r in report["test_runs"]] == [(0, 1), (0, 2)]
    assert (out / "calc.py").read_text() == PYTHON_SUB
    assert snapshot(source) == before


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True, env=env).stdout


def test_in_place_on_a_git_repository_leaves_a_branch_whose_commits_each_pass(capsys, tmp_path):
    good = example("python")
    source = write_tree(tmp_path / "project", broken(good, "calc.py"))
    git(source, "init", "-q", "-b", "main")
    git(source, "add", "-A")
    git(source, "commit", "-qm", "a project with a bug")
    fix = {"summary": "add must add", "actions": [{"kind": "fix_file", "path": "calc.py", "instructions": "use +"}]}
    model = cassette(tmp_path, **{"diagnose:1": "the sign is wrong", "plan:1": fix, "fix_file:1:calc.py": good["calc.py"]})
    code, text = run_cli(capsys, tmp_path, "make the tests pass", "--from", str(source), "--in-place",
                         "--model", model, "--thread-id", "inplace0001")
    assert code == 0, text
    branch = "devlooper/inplace0001"
    assert git(source, "branch", "--show-current").strip() == branch
    commits = git(source, "rev-list", "--reverse", f"main..{branch}").split()
    assert len(commits) == 1
    assert "add must add" in git(source, "log", "-1", "--format=%B", commits[0])
    for commit in commits:  # each commit, checked out alone, passes its tests
        tree = tmp_path / f"at-{commit[:8]}"
        tree.mkdir()
        subprocess.run(f"git -C {source} archive {commit} | tar -x -C {tree}", shell=True, check=True)
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tree,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout
    assert (source / "debug.log").exists() and git(source, "log", "main", "-1", "--format=%s").strip() == (
        "a project with a bug")


def test_in_place_refuses_a_folder_that_is_not_a_git_repository(capsys, tmp_path):
    source = write_tree(tmp_path / "project", example("python"))
    before = snapshot(source)
    code, text = run_cli(capsys, tmp_path, "x", "--from", str(source), "--in-place", "--model", cassette(tmp_path))
    assert code == 2 and "--in-place needs a git repository" in text
    assert snapshot(source) == before
