"""The manifest that lets a finished project reproduce its environment.

Installs change the environment, not the project's files; after each install
(and at the end) the project's manifest is brought in line with what the
environment holds, as an edit like any other, so the state, the prompts and
the output all show it. Each runtime has its own manifest: pinned
requirements for python, package.json with its lock for node, Cargo.toml
dependencies for rust. A generic template's manifest is the model's to write.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Awaitable, Callable

from .cargo_manifest import cargo_dependencies
from .sandboxes.base import Sandbox
from .layers import Layer
from .templates.base import EnvTemplate

FREEZE = (
    "python -c 'import importlib.metadata as m; "
    "print(\"\\n\".join(f\"{d.name}=={d.version}\" for d in m.distributions()))'"
)


def _name(spec: str) -> str:
    return re.split(r"[\[<>=!~ ;@]", spec, maxsplit=1)[0].strip().lower().replace("_", "-")


def requested_packages(template: EnvTemplate, layers: list[Layer]) -> list[str]:
    """Every package asked for during the run, base packages first, in order, once."""
    specs = list(template.base_packages)
    for layer in layers:
        if layer["kind"] == "install":
            specs += shlex.split(layer["spec"])
    seen, out = set(), []
    for spec in specs:
        if _name(spec) not in seen:
            seen.add(_name(spec))
            out.append(spec)
    return out


async def python_requirements(box: Sandbox, template: EnvTemplate, files: dict[str, str]) -> dict[str, str]:
    """requirements.txt: the project's own lines, then each installed package pinned."""
    # importlib.metadata answers in tens of milliseconds where `pip freeze` takes half a second.
    freeze = await box.exec(FREEZE, timeout=120)
    pinned = {}
    for line in freeze.stdout.splitlines():
        if "==" in line:
            pinned[_name(line.split("==")[0])] = line.strip()
    existing = [ln.strip() for ln in files.get(template.manifest, "").splitlines() if ln.strip()]
    have = {_name(ln) for ln in existing if not ln.startswith("#")}
    lines = list(existing)
    for spec in requested_packages(template, box.layers):
        name = _name(spec)
        if name not in have:
            have.add(name)
            lines.append(pinned.get(name, spec))
    return {template.manifest: "\n".join(lines) + "\n"}


NODE_LOCK = "package-lock.json"
NODE_SECTIONS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")


async def node_package(box: Sandbox, template: EnvTemplate, files: dict[str, str]) -> dict[str, str]:
    """package.json and its lock, from the environment, where npm wrote them.

    The project's own package.json (if the model wrote one) keeps its fields
    and its other scripts and dependencies; for a package both name, the
    environment's section and version win, as they are what the tests ran with
    and what the lock holds."""
    try:
        env = json.loads(await box.read_env_file("package.json"))
    except FileNotFoundError:
        return {}  # a node template that keeps no package.json: the model's is the manifest
    try:
        own = json.loads(files.get(template.manifest) or "{}")
    except json.JSONDecodeError:
        own = {}
    own = own if isinstance(own, dict) else {}
    installed = {name for section in NODE_SECTIONS for name in env.get(section, {})}
    merged = {**own, **{k: v for k, v in env.items() if k not in ("scripts", *NODE_SECTIONS)}}
    for section in ("scripts", *NODE_SECTIONS):
        theirs = own.get(section)
        theirs = theirs if isinstance(theirs, dict) else {}
        mine = {k: v for k, v in theirs.items() if section == "scripts" or k not in installed}
        union = {**mine, **env.get(section, {})}
        if union:
            merged[section] = union
    out = {template.manifest: json.dumps(merged, indent=2) + "\n"}
    try:
        out[NODE_LOCK] = await box.read_env_file(NODE_LOCK)
    except FileNotFoundError:
        pass
    return out


Builder = Callable[[Sandbox, EnvTemplate, dict[str, str]], Awaitable[dict[str, str]]]
BUILDERS: dict[str, Builder] = {"python": python_requirements, "node": node_package, "rust": cargo_dependencies}


async def build_manifest(box: Sandbox, template: EnvTemplate, files: dict[str, str]) -> dict[str, str]:
    """Manifest files (path -> content) that match the sandbox's environment; only those that differ."""
    builder = BUILDERS.get(template.runtime)
    if builder is None:
        return {}
    wanted = await builder(box, template, files)
    return {path: content for path, content in wanted.items() if files.get(path) != content}
