"""Exercism exercises as bench tasks (the layout aider's benchmark uses).

An exercise folder holds ``.docs/instructions.md`` (and maybe
``instructions.append.md``), ``.meta/config.json`` naming its ``solution``,
``test`` and ``example`` files, a stub at the solution's path and the tests.
The instructions and the stub (its names and signatures: the tests import them)
become the prompt; the tests become the hidden acceptance tests. The example
solution is never copied: it is the exercise's answer.

Tracks: Python (python template; the tests go under ``tests/``, where its pytest
configuration looks), JavaScript with Jest (react template, the only node one;
``xtest``/``xit`` become ``test``/``it`` so every test runs) and Rust (rust
template, whose crate is ``app``: the tests' ``CRATE::`` paths are renamed, and
``#[ignore]`` is dropped so every test runs).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..paths import UnsafePathError, normalize
from .suite import HIDDEN_DIR, PROMPT_FILE, TASK_FILE

TRACKS = {".py": ("python", "python"), ".js": ("javascript", "react"), ".rs": ("rust", "rust")}
RUST_CRATE = "app"  # the rust template's crate name


@dataclass
class Imported:
    name: str
    track: str
    folder: Path


def find_exercises(root: str | Path) -> list[Path]:
    """Exercise folders under ``root``: itself, or any folder below with ``.meta/config.json``
    (a track clone keeps them in ``exercises/practice`` and ``exercises/concept``)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ConfigError(f"exercism import: {root} is not a directory")
    if (root / ".meta" / "config.json").is_file():
        return [root]
    found = sorted(p.parent.parent for p in root.glob("**/.meta/config.json") if not p.is_symlink())
    if not found:
        raise ConfigError(f"exercism import: no exercise under {root} (a folder with .meta/config.json)")
    return found


def _read(exercise: Path, rel: str) -> str:
    try:
        path = normalize(rel)
    except UnsafePathError as exc:
        raise ConfigError(f"exercise {exercise}: .meta/config.json names {rel!r}: {exc}") from None
    target = exercise / path
    if target.is_symlink() or not target.is_file():
        raise ConfigError(f"exercise {exercise}: {rel} (named in .meta/config.json) is not a file")
    return target.read_text(encoding="utf-8")


def _config(exercise: Path) -> dict[str, list[str]]:
    try:
        data = json.loads((exercise / ".meta" / "config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"exercise {exercise}: .meta/config.json is not valid JSON: {exc}") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not files.get("solution") or not files.get("test"):
        raise ConfigError(f"exercise {exercise}: .meta/config.json has no files.solution and files.test")
    named = {k: [str(v) for v in files.get(k) or []] for k in ("solution", "test", "example")}
    for rel in (*named["solution"], *named["test"]):
        try:
            normalize(rel)
        except UnsafePathError as exc:
            raise ConfigError(f"exercise {exercise}: .meta/config.json names {rel!r}: {exc}") from None
    return named


def _instructions(exercise: Path) -> str:
    docs = exercise / ".docs"
    parts = [docs / "instructions.md", docs / "instructions.append.md"]
    text = "\n\n".join(p.read_text(encoding="utf-8").strip() for p in parts if p.is_file() and not p.is_symlink())
    if not text:
        raise ConfigError(f"exercise {exercise}: no .docs/instructions.md")
    return text


def _crate(exercise: Path) -> str | None:
    cargo = exercise / "Cargo.toml"
    if not cargo.is_file():
        return None
    match = re.search(r'^\s*name\s*=\s*"([^"]+)"', cargo.read_text(encoding="utf-8"), re.M)
    return match.group(1).replace("-", "_") if match else None


def _hidden_tests(track: str, exercise: Path, tests: list[str]) -> dict[str, str]:
    hidden = {}
    crate = _crate(exercise) if track == "rust" else None
    for rel in tests:
        text = _read(exercise, rel)
        name = rel.rsplit("/", 1)[-1]
        if track == "python":
            hidden[f"tests/{name}"] = text  # the python template's pytest looks in tests/
        elif track == "javascript":
            hidden[rel] = re.sub(r"\bx(test|it)\s*\(", r"\1(", text)
        else:
            text = re.sub(r"^\s*#\[ignore(\s*=\s*\"[^\"]*\")?\]\s*\n", "", text, flags=re.M)
            if crate and crate != RUST_CRATE:
                text = re.sub(rf"\b{re.escape(crate)}::", f"{RUST_CRATE}::", text)
                text = re.sub(rf"\b(use|extern crate)\s+{re.escape(crate)}\b", rf"\1 {RUST_CRATE}", text)
            hidden[rel if rel.startswith("tests/") else f"tests/{name}"] = text
    return hidden


def _prompt(track: str, exercise: Path, solution: list[str]) -> str:
    stubs = "\n\n".join(f"{rel}:\n```\n{_read(exercise, rel).rstrip()}\n```" for rel in solution)
    where = ", ".join(solution)
    extra = {
        "python": "The tests import the solution module from the project root.",
        "javascript": f"Put the solution at the project root as {where} (not under src/); the tests import it "
                      "with a relative path. Plain JavaScript, no React needed.",
        "rust": "The crate is the template's library crate (app); the tests call its public items.",
    }[track]
    return (
        f"{_instructions(exercise)}\n\n---\n\nWrite the solution in {where}, keeping the names and signatures of "
        f"this stub (hidden tests call them), and write your own tests. {extra}\n\n{stubs}\n"
    )


def import_exercise(exercise: str | Path, out: str | Path) -> Imported:
    """One exercise as a task folder ``out/SLUG``."""
    exercise = Path(exercise).expanduser()
    files = _config(exercise)
    ext = Path(files["solution"][0]).suffix
    if ext not in TRACKS:
        raise ConfigError(f"exercise {exercise}: {files['solution'][0]}: only the Python, JavaScript and Rust "
                          "tracks can be imported")
    track, template = TRACKS[ext]
    task = Path(out).expanduser() / exercise.name
    hidden = _hidden_tests(track, exercise, files["test"])
    # A Rust exercise lists its Cargo.toml as a solution file; the template's is the crate's.
    solution = [rel for rel in files["solution"] if not (track == "rust" and rel.endswith("Cargo.toml"))]
    prompt = _prompt(track, exercise, solution)
    task.mkdir(parents=True, exist_ok=True)
    (task / TASK_FILE).write_text(
        f'template = "{template}"\ndescription = "Exercism {track} exercise {exercise.name}"\n', encoding="utf-8"
    )
    (task / PROMPT_FILE).write_text(prompt, encoding="utf-8")
    for rel, text in hidden.items():
        target = task / HIDDEN_DIR / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return Imported(exercise.name, track, task)


def import_exercises(root: str | Path, out: str | Path, *, force: bool = False) -> list[Imported]:
    """Every exercise under ``root`` as a task of the suite folder ``out``; an existing
    task folder is refused unless ``force`` (its files are then replaced)."""
    exercises = find_exercises(root)
    out = Path(out).expanduser()
    clashes = [e.name for e in exercises if (out / e.name).exists()]
    if clashes and not force:
        raise ConfigError(f"{out} already holds task(s) {', '.join(clashes[:10])}; pass --force to replace them")
    names = [e.name for e in exercises]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"exercises with the same name under {root}: {', '.join(dupes)}; import one track at a time")
    return [import_exercise(e, out) for e in exercises]
