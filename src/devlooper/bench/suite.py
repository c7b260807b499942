"""A bench suite: a folder of tasks, each a request with acceptance tests the model never sees.

::

    SUITE/
      TASK/
        task.toml      template = "python"   (optional: max_iterations, description)
        prompt.md      the request, as a user would type it
        hidden/        the acceptance tests, by their path in the project
        project/       optional: a starting project (improve mode)
        cassette.json  optional: recorded model replies, for ``--model replay``

A folder without ``task.toml`` is not a task (so a suite may hold notes or data).
Every problem with a task is one ``ConfigError`` that names its folder, before any
task runs: a bench that fails on its tenth task after an hour has wasted the hour.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from ..improve import load_project
from ..paths import UnsafePathError, normalize
from ..templates import get_template

TASK_FILE = "task.toml"
PROMPT_FILE = "prompt.md"
HIDDEN_DIR = "hidden"
PROJECT_DIR = "project"
CASSETTE_FILE = "cassette.json"
TASK_KEYS = {"template", "max_iterations", "description"}


@dataclass(frozen=True)
class Task:
    name: str
    folder: Path
    prompt: str
    template: str
    hidden: dict[str, str]  # project path -> content of an acceptance test file
    project: dict[str, str] | None = None  # improve mode: the files the run starts from
    max_iterations: int | None = None
    description: str = ""
    cassette: Path | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    folder: Path
    tasks: list[Task] = field(default_factory=list)


def bundled_suite() -> Path:
    """The small suite shipped with the package (replayable offline)."""
    return Path(str(resources.files("devlooper.bench") / "suites" / "basic"))


def _text_files(folder: Path) -> dict[str, str]:
    files = {}
    for item in sorted(folder.rglob("*")):
        if item.is_symlink():
            raise ConfigError(f"{item}: a link; acceptance tests and projects must be plain files")
        if item.is_file():
            try:
                files[normalize(item.relative_to(folder).as_posix())] = item.read_text(encoding="utf-8")
            except (UnsafePathError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{item}: {exc}") from None
    return files


def load_task(folder: str | Path) -> Task:
    folder = Path(folder).expanduser()
    where = f"task {folder}"
    try:
        meta = tomllib.loads((folder / TASK_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: no {TASK_FILE}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {TASK_FILE} is not valid TOML: {exc}") from None
    unknown = set(meta) - TASK_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) in {TASK_FILE}: {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(TASK_KEYS))}")
    template = meta.get("template")
    if not isinstance(template, str) or not template:
        raise ConfigError(f"{where}: {TASK_FILE} must name its template (template = \"python\")")
    if template.startswith("."):  # a user template next to the suite: resolved from the task's folder
        template = str((folder / template).resolve())
    try:
        get_template(template)  # an unknown template or a broken user template fails here, not mid-bench
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    limit = meta.get("max_iterations")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ConfigError(f"{where}: max_iterations must be a whole number of at least 1")
    prompt_path = folder / PROMPT_FILE
    prompt = prompt_path.read_text(encoding="utf-8").strip() if prompt_path.is_file() else ""
    if not prompt:
        raise ConfigError(f"{where}: no {PROMPT_FILE} with the request")
    hidden = _text_files(folder / HIDDEN_DIR) if (folder / HIDDEN_DIR).is_dir() else {}
    if not hidden:
        raise ConfigError(f"{where}: no acceptance tests in {HIDDEN_DIR}/")
    project = load_project(folder / PROJECT_DIR, template).files if (folder / PROJECT_DIR).is_dir() else None
    cassette = folder / CASSETTE_FILE
    return Task(
        name=folder.name, folder=folder, prompt=prompt, template=template,
        hidden=hidden, project=project, max_iterations=limit, description=str(meta.get("description", "")),
        cassette=cassette if cassette.is_file() else None,
    )


def load_suite(folder: str | Path, only: list[str] | None = None) -> Suite:
    """Every task of the suite, by name; ``only`` keeps the named ones (each must exist)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"bench suite {folder}: not a directory")
    tasks = [load_task(sub) for sub in sorted(folder.iterdir()) if (sub / TASK_FILE).is_file()]
    if not tasks:
        raise ConfigError(f"bench suite {folder}: no task folders (a folder with {TASK_FILE})")
    if only:
        names = {t.name for t in tasks}
        missing = [n for n in only if n not in names]
        if missing:
            raise ConfigError(f"bench suite {folder}: no task {', '.join(missing)}; tasks: {', '.join(sorted(names))}")
        tasks = [t for t in tasks if t.name in only]
    return Suite(name=folder.resolve().name, folder=folder.resolve(), tasks=tasks)
