"""Environment templates: the built-ins, user templates from TOML, lookup by name or path."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from ..errors import ConfigError
from .base import EnvTemplate

TEMPLATE_FILE = "template.toml"  # the file a template folder holds
FILES_DIR = "files"  # in a template folder: setup files, by their project path


def parse_template(
    text: str, *, source: str, name: str | None = None, files: dict[str, str] | None = None
) -> EnvTemplate:
    """A template from TOML text; every problem becomes one ``ConfigError`` that names ``source``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"template {source}: not valid TOML: {exc}") from None
    if name and "name" not in data:
        data["name"] = name
    if files:
        data["setup_files"] = {**files, **data.get("setup_files", {})}
    try:
        return EnvTemplate.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"template {source}: {problems}") from None


def load_template(path: str | Path) -> EnvTemplate:
    """A user template: a ``.toml`` file, or a folder with ``template.toml`` and
    optionally ``files/`` (each file under it becomes a setup file)."""
    path = Path(path).expanduser()
    files: dict[str, str] = {}
    if path.is_dir():
        folder, path = path, path / TEMPLATE_FILE
        if not path.is_file():
            raise ConfigError(f"template folder {folder} has no {TEMPLATE_FILE}")
        for item in sorted((folder / FILES_DIR).rglob("*")):
            if item.is_file():
                files[item.relative_to(folder / FILES_DIR).as_posix()] = item.read_text(encoding="utf-8")
        default_name = folder.name
    elif path.is_file():
        default_name = path.stem
    else:
        raise ConfigError(f"template file not found: {path}")
    return parse_template(path.read_text(encoding="utf-8"), source=str(path), name=default_name, files=files)


def _builtins() -> dict[str, EnvTemplate]:
    folder = resources.files(__package__) / "builtin"
    found = {}
    for item in sorted(folder.iterdir(), key=lambda i: i.name):
        if item.name.endswith(".toml"):
            template = parse_template(item.read_text(encoding="utf-8"), source=f"builtin/{item.name}")
            found[template.name] = template
    return found


BUILTIN: dict[str, EnvTemplate] = _builtins()


def is_template_path(ref: str) -> bool:
    return "/" in ref or ref.endswith(".toml") or ref.startswith(".") or ref.startswith("~")


def get_template(ref: str) -> EnvTemplate:
    """A built-in by name, or a user template by path; else a ``ConfigError`` listing the choices."""
    if ref in BUILTIN:
        return BUILTIN[ref]
    if is_template_path(ref) or Path(ref).exists():
        return load_template(ref)
    known = ", ".join(sorted(BUILTIN))
    raise ConfigError(f"unknown template {ref!r}; known: {known}, or a path to a template .toml file or folder")


__all__ = ["BUILTIN", "EnvTemplate", "get_template", "load_template", "parse_template"]
