"""Improve mode: start from an existing project instead of generating one.

``load_project`` reads a folder the way git sees it (``.gitignore`` respected,
through ``pathspec``; version-control folders, environments and the template's
build outputs skipped), keeps text files within the state's caps and says what
it skipped. The graph's ``load`` node then picks the template (the input's, or
one detected from ``pyproject.toml``/``package.json``/``Cargo.toml``), installs
the dependencies the project declares and runs its tests before any change.

The source folder is only read. ``InPlace`` is the one exception the user asks
for (``--in-place``): on a git repository it works on a new branch and commits
each green step, with the git CLI.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec

from .budgets import MAX_FILE_BYTES
from .errors import ConfigError
from .paths import UnsafePathError, normalize, resolve_inside
from .sandboxes.workspace import TooLarge, read_capped, scan
from .templates import get_template

MAX_PROJECT_FILES = 2_000  # text files one project may bring into the state
MAX_PROJECT_BYTES = 20_000_000  # and their total size: every checkpoint holds them
# Never project files, whatever the template: version control, devlooper's own, environments.
ALWAYS_SKIPPED = (".git", ".hg", ".svn", ".devlooper", "node_modules", ".venv", "venv", "__pycache__")


@dataclass
class Loaded:
    files: dict[str, str]
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why (binary, too large, link, ignored name)


def _gitignore(root: Path) -> pathspec.PathSpec:
    """The root's and every nested ``.gitignore``, each pattern anchored to its folder."""
    lines: list[str] = []
    for entry in scan(root, ALWAYS_SKIPPED):
        if entry.kind != "file" or not entry.path.endswith(".gitignore"):
            continue
        base = entry.path[: -len(".gitignore")]
        try:
            text = read_capped(root, entry.path, 1_000_000).decode("utf-8", "replace")
        except (OSError, TooLarge):
            continue
        for line in text.splitlines():
            line = line.rstrip()
            if not line or line.startswith("#"):
                continue
            negate, line = ("!", line[1:]) if line.startswith("!") else ("", line)
            if base:
                # "a.txt" in sub/.gitignore matches at any depth below sub/, "/a.txt" only at sub/a.txt.
                line = f"{base}{line.lstrip('/')}" if "/" in line.rstrip("/") else f"{base}**/{line}"
            lines.append(negate + line)
    return pathspec.GitIgnoreSpec.from_lines(lines)


def load_project(root: str | Path, template: str | None = None) -> Loaded:
    """The text files of the project at ``root`` (relative POSIX path -> content)."""
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"--from {folder}: not a directory")
    skip = [*ALWAYS_SKIPPED, *(get_template(template).not_project() if template else [])]
    spec = _gitignore(folder)
    loaded = Loaded(files={})
    total = 0
    for entry in scan(folder, skip):
        if spec.match_file(entry.path):
            continue
        if entry.kind != "file":
            loaded.skipped[entry.path] = "a link" if entry.kind == "link" else "not a regular file"
            continue
        if entry.size > MAX_FILE_BYTES:
            loaded.skipped[entry.path] = f"larger than {MAX_FILE_BYTES} bytes"
            continue
        try:
            path = normalize(entry.path)
            data = read_capped(folder, entry.path, MAX_FILE_BYTES)
        except (UnsafePathError, TooLarge, OSError) as exc:
            loaded.skipped[entry.path] = str(exc)
            continue
        try:
            if b"\x00" in data:
                raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            loaded.skipped[entry.path] = "binary"
            continue
        total += len(data)
        if len(loaded.files) >= MAX_PROJECT_FILES or total > MAX_PROJECT_BYTES:
            raise ConfigError(
                f"--from {folder}: more than {MAX_PROJECT_FILES} text files or {MAX_PROJECT_BYTES} bytes; "
                "list build outputs and data in .gitignore, or point --from at a smaller folder"
            )
        loaded.files[path] = text
    if not loaded.files:
        raise ConfigError(f"--from {folder}: no text files to work on (after .gitignore)")
    return loaded


# --- the template and the declared dependencies -------------------------------------
def detect_template(files: dict[str, str]) -> str | None:
    """The built-in template a project's manifest points to, or None."""
    if "Cargo.toml" in files:
        return "rust"
    if "package.json" in files:
        return "react"
    if any(name in files for name in ("pyproject.toml", "requirements.txt", "setup.py", "setup.cfg")):
        return "python"
    if any(path.endswith(".py") for path in files):
        return "python"
    return None


def declared_packages(files: dict[str, str], runtime: str) -> list[str]:
    """The third-party packages the project's manifest declares, as the template's
    install command takes them. Unreadable manifests declare nothing (their tests will say)."""
    try:
        if runtime == "python":
            return _python_packages(files)
        if runtime == "node" and "package.json" in files:
            data = json.loads(files["package.json"])
            deps = {**(data.get("dependencies") or {}), **(data.get("devDependencies") or {})}
            return [f"{name}@{version}" if isinstance(version, str) and version else name for name, version in deps.items()]
        if runtime == "rust" and "Cargo.toml" in files:
            deps = tomllib.loads(files["Cargo.toml"]).get("dependencies") or {}
            out = []
            for name, spec in deps.items():
                version = spec if isinstance(spec, str) else (spec or {}).get("version")
                if isinstance(spec, dict) and "path" in spec:
                    continue  # a local crate is part of the workspace, not the registry
                out.append(f"{name}@{version}" if version else name)
            return out
    except (ValueError, tomllib.TOMLDecodeError, AttributeError):
        return []
    return []


def _python_packages(files: dict[str, str]) -> list[str]:
    out: list[str] = []
    for line in files.get("requirements.txt", "").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):  # -r, -e, --index-url: options, not packages
            out.append(line)
    if "pyproject.toml" in files:
        project = tomllib.loads(files["pyproject.toml"]).get("project") or {}
        out += list(project.get("dependencies") or [])
        extras = project.get("optional-dependencies") or {}
        for group in ("test", "tests", "dev"):
            out += list(extras.get(group) or [])
    return list(dict.fromkeys(out))


# --- --in-place: a branch, and a commit for each green step ------------------------------
def _git(root: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise ConfigError(f"git {' '.join(args[:2])} in {root} failed: {(done.stderr or done.stdout).strip()[:300]}")
    return done.stdout.strip()


class InPlace:
    """Writes a run's green steps back into the git repository it was loaded from.

    Made before the run: refuses a folder that is not a git work tree, or one with
    uncommitted changes to tracked files (they would be mixed into the commits), and
    switches to a new branch. ``on_update`` follows the run's updates; after each test
    run that passes, the files that changed since the last commit are written (and the
    loaded files the run deleted are removed) and committed with what changed and why.
    Paths the run never wrote are never touched.
    """

    def __init__(self, root: str | Path, loaded: dict[str, str], prompt: str, thread_id: str) -> None:
        self.root = Path(root).expanduser().resolve()
        if _git(self.root, "rev-parse", "--is-inside-work-tree", check=False) != "true":
            raise ConfigError(f"--in-place needs a git repository, and {self.root} is not one; use --output instead")
        if _git(self.root, "status", "--porcelain", "--untracked-files=no"):
            raise ConfigError(f"--in-place: {self.root} has uncommitted changes; commit or stash them first")
        self.branch = f"devlooper/{thread_id[:12]}"
        _git(self.root, "switch", "-c", self.branch)
        self.prompt = prompt
        self.committed = dict(loaded)  # what the branch holds, as far as the run is concerned
        self.files = dict(loaded)
        self.summary = "the project as loaded"
        self.commits: list[str] = []

    def on_update(self, node: str, update: dict[str, Any]) -> None:
        if "files" in update:
            from .state import merge_files  # noqa: PLC0415  (the state module brings LangGraph)

            self.files = merge_files(self.files, update["files"])
        for plan in update.get("plans") or []:
            self.summary = f"iteration {plan['iteration']}: {plan.get('summary', '')}"
        runs = update.get("test_runs") or []
        if node == "test" and runs and runs[-1]["exit_code"] == 0:
            self.commit(runs[-1])

    def commit(self, run: dict[str, Any]) -> None:
        changed = {p: t for p, t in self.files.items() if self.committed.get(p) != t}
        deleted = [p for p in self.committed if p not in self.files]
        if not changed and not deleted:
            return
        for path, text in changed.items():
            target = resolve_inside(self.root, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        for path in deleted:
            resolve_inside(self.root, path).unlink(missing_ok=True)
        _git(self.root, "add", "-A", "--", *changed, *deleted)
        body = (
            f"{self.summary}\n\nTests pass ({run['passed']} passed) at run {run['iteration']}.\n"
            f"Changed: {', '.join(sorted(changed)) or '-'}\nDeleted: {', '.join(sorted(deleted)) or '-'}"
        )
        identity = [] if _git(self.root, "config", "user.email", check=False) else [
            "-c", "user.name=devlooper", "-c", "user.email=devlooper@localhost"]
        _git(self.root, *identity, "commit", "--no-verify", "-m", f"devlooper: {self.prompt[:60]}", "-m", body)
        self.commits.append(_git(self.root, "rev-parse", "HEAD"))
        self.committed = dict(self.files)
