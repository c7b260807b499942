"""The rust manifest: the project's Cargo.toml with the dependencies installs added.

An install never edits the project (an environment taken from the cache would
skip it): ``cargo add`` records the dependency in a dependency-only crate of
the environment, ``$DEVLOOPER_ENV/deps`` (the rust template's setup commands
create it). Its dependency tables are merged into the project's Cargo.toml
here, with tomlkit so that the project's own formatting and comments stay.
"""

from __future__ import annotations

import posixpath
import tomllib

import tomlkit
from tomlkit.exceptions import TOMLKitError

from .sandboxes.base import Sandbox
from .templates.base import EnvTemplate

DEPS_MANIFEST = "deps/Cargo.toml"  # in the environment directory
DEP_TABLES = ("dependencies", "dev-dependencies", "build-dependencies")  # cargo add, --dev, --build


def merge_dependencies(project: str, deps: str, deps_dir: str) -> str:
    """``project`` (Cargo.toml text) with every entry of ``deps``' dependency tables.

    ``deps_dir`` is where cargo saw the deps crate: ``cargo add --path`` wrote
    paths relative to it, which become absolute, so that the finished project
    builds wherever it is copied on this machine. An entry the project already
    has with the same value is left as it is written; raises ``TOMLKitError``
    if either text is not TOML.
    """
    doc = tomlkit.parse(project)
    source = tomlkit.parse(deps)
    for name in DEP_TABLES:
        wanted = source.get(name)
        if not wanted:
            continue
        if name not in doc:
            doc.add(name, tomlkit.table())
        table = doc[name]
        for crate, spec in wanted.items():
            path = spec.get("path") if isinstance(spec, dict) else None
            if isinstance(path, str) and not posixpath.isabs(path):
                spec["path"] = posixpath.normpath(posixpath.join(deps_dir, path))
            if crate not in table or table[crate].unwrap() != spec.unwrap():
                table[crate] = spec
    return tomlkit.dumps(doc)


async def cargo_dependencies(box: Sandbox, template: EnvTemplate, files: dict[str, str]) -> dict[str, str]:
    """Cargo.toml with the environment's dependencies; nothing when there is nothing to
    merge or the project's Cargo.toml is not TOML (the next test run shows that error)."""
    try:
        deps = await box.read_env_file(DEPS_MANIFEST)
    except FileNotFoundError:
        return {}
    if not any(tomllib.loads(deps).get(name) for name in DEP_TABLES):
        return {}  # nothing installed yet (finish of a std-only crate): the project's text stays as written
    project = files.get(template.manifest, template.setup_files.get(template.manifest, ""))
    found = await box.exec(["sh", "-c", 'printf %s "$DEVLOOPER_ENV"'], timeout=60)
    if not found.ok or not found.stdout.strip():
        return {}  # relative paths could not be resolved: better no entry than a wrong one
    deps_dir = posixpath.join(found.stdout.strip(), posixpath.dirname(DEPS_MANIFEST))
    try:
        merged = merge_dependencies(project, deps, deps_dir)
    except TOMLKitError:
        return {}
    return {template.manifest: merged}
