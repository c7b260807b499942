"""Improve mode's loading of an existing project, and --in-place's git branch."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from devlooper.errors import ConfigError
from devlooper.improve import InPlace, declared_packages, detect_template, load_project


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def test_load_respects_gitignore_and_skips_binaries_links_large_files_and_environments(tmp_path: Path):
    write(tmp_path, {
        ".gitignore": "*.log\n/build/\n",
        "app.py": "x = 1\n",
        "run.log": "noise",
        "build/out.txt": "built",
        "sub/.gitignore": "secret.txt\n",
        "sub/secret.txt": "s",
        "sub/deep/secret.txt": "s",
        "sub/keep.txt": "k",
        "other/secret.txt": "not ignored here",
        "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00",
        "big.txt": "a" * 1_000_001,
        ".git/config": "[core]",
        ".venv/lib/x.py": "venv",
        "node_modules/m/index.js": "m",
    })
    (tmp_path / "link.py").symlink_to(tmp_path / "app.py")
    loaded = load_project(tmp_path)
    assert sorted(loaded.files) == [".gitignore", "app.py", "other/secret.txt", "sub/.gitignore", "sub/keep.txt"]
    assert loaded.skipped == {"big.txt": "larger than 1000000 bytes", "link.py": "a link", "logo.png": "binary"}


def test_a_template_drops_its_build_outputs(tmp_path: Path):
    write(tmp_path, {"Cargo.toml": "[package]\nname='a'\n", "src/lib.rs": "", "target/debug/x.d": "dep"})
    assert sorted(load_project(tmp_path, "rust").files) == ["Cargo.toml", "src/lib.rs"]


def test_load_refuses_a_missing_or_empty_folder(tmp_path: Path):
    with pytest.raises(ConfigError, match="not a directory"):
        load_project(tmp_path / "nope")
    write(tmp_path, {".gitignore": "*\n"})
    with pytest.raises(ConfigError, match="no text files"):
        load_project(tmp_path)


@pytest.mark.parametrize(
    "files, template",
    [
        ({"Cargo.toml": "", "src/lib.rs": ""}, "rust"),
        ({"package.json": "{}"}, "react"),
        ({"pyproject.toml": ""}, "python"),
        ({"requirements.txt": ""}, "python"),
        ({"tool.py": ""}, "python"),
        ({"README.md": ""}, None),
    ],
)
def test_the_template_is_detected_from_the_manifest(files, template):
    assert detect_template(files) == template


def test_declared_packages_per_runtime():
    py = {
        "requirements.txt": "requests==2.32 # http\n-r other.txt\n\nattrs\n",
        "pyproject.toml": '[project]\nname="a"\ndependencies=["attrs", "rich>=13"]\n'
                          '[project.optional-dependencies]\ntest=["hypothesis"]\ndocs=["sphinx"]\n',
    }
    assert declared_packages(py, "python") == ["requests==2.32", "attrs", "rich>=13", "hypothesis"]
    node = {"package.json": '{"dependencies": {"react": "^19.0.0"}, "devDependencies": {"jest": "30"}}'}
    assert declared_packages(node, "node") == ["react@^19.0.0", "jest@30"]
    rust = {"Cargo.toml": '[dependencies]\nserde = "1"\nrand = { version = "0.8" }\nlocal = { path = "../l" }\n'}
    assert declared_packages(rust, "rust") == ["serde@1", "rand@0.8"]
    assert declared_packages({"package.json": "{not json"}, "node") == []


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True, env=env).stdout


def test_in_place_refuses_without_git_or_with_uncommitted_changes(tmp_path: Path):
    write(tmp_path, {"a.py": "x = 1\n"})
    with pytest.raises(ConfigError, match="needs a git repository"):
        InPlace(tmp_path, {"a.py": "x = 1\n"}, "p", "t" * 12)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "init")
    (tmp_path / "a.py").write_text("x = 2\n")
    with pytest.raises(ConfigError, match="uncommitted changes"):
        InPlace(tmp_path, {"a.py": "x = 1\n"}, "p", "t" * 12)


def test_in_place_commits_each_green_step_on_a_new_branch_and_touches_nothing_else(tmp_path: Path):
    write(tmp_path, {"a.py": "x = 1\n", "old.py": "gone\n", ".gitignore": "local.txt\n", "local.txt": "mine"})
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "init")
    loaded = {"a.py": "x = 1\n", "old.py": "gone\n", ".gitignore": "local.txt\n"}
    place = InPlace(tmp_path, loaded, "make x two", "abcdef1234567890")
    assert git(tmp_path, "branch", "--show-current").strip() == "devlooper/abcdef123456"
    green = {"iteration": 1, "exit_code": 0, "passed": 1}
    place.on_update("test", {"test_runs": [green]})  # green before any change: nothing to commit
    place.on_update("plan", {"plans": [{"iteration": 1, "summary": "set x to 2, drop old.py", "actions": []}]})
    place.on_update("apply", {"files": {"a.py": "x = 2\n", "old.py": None, "new.py": "y = 1\n"}})
    place.on_update("test", {"test_runs": [{**green, "exit_code": 1, "iteration": 2}]})  # red: no commit
    assert len(place.commits) == 0
    place.on_update("test", {"test_runs": [{**green, "iteration": 3}]})
    assert len(place.commits) == 1
    log = git(tmp_path, "log", "--format=%s%n%b", "-1")
    assert "devlooper: make x two" in log and "set x to 2, drop old.py" in log
    assert git(tmp_path, "show", "--name-status", "--format=", "HEAD").split() == [
        "M", "a.py", "A", "new.py", "D", "old.py"]
    assert (tmp_path / "local.txt").read_text() == "mine"  # ignored, never the run's
    assert git(tmp_path, "log", "main", "--format=%s").split("\n")[0] == "init"  # main untouched
