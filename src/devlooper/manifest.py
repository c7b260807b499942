"""The manifest that lets a finished project reproduce its environment.

Installs change the environment, not the project's files; after each install
(and at the end) the project's manifest is brought in line with what the
environment holds, as an edit like any other, so the state, the prompts and
the output all show it. Each runtime has its own manifest: every installed
package pinned for python (whatever installed it), package.json with its lock for node, Cargo.toml
dependencies for rust. A generic template's manifest is the model's to write.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Awaitable, Callable

from .cargo_manifest import cargo_dependencies
from .sandboxes.base import Sandbox
from .layers import Layer
from .templates.base import EnvTemplate

log = logging.getLogger("devlooper.manifest")

# Every distribution the environment's python sees: name, version, and where it was
# installed from when that was a URL, a path or a VCS checkout (PEP 610's direct_url.json).
# importlib.metadata answers in tens of milliseconds where `pip freeze` takes half a second.
# The working directory (the workspace, "" on sys.path) is left out: the listing is the
# environment's alone, so a cached environment keeps it (Sandbox.list_environment), and
# the project's own build metadata (an *.egg-info) is not listed as one of its packages.
FREEZE = """python -c '
import importlib.metadata as m, json, sys
sys.path[:] = [p for p in sys.path if p]
out = []
for d in m.distributions():
    try:
        info = json.loads(d.read_text("direct_url.json") or "null")
    except ValueError:
        info = None
    url = None
    if isinstance(info, dict) and info.get("url") and not (info.get("dir_info") or {}).get("editable"):
        vcs = info.get("vcs_info")
        url = vcs.get("vcs", "git") + "+" + info["url"] + "@" + vcs.get("commit_id", "") if vcs else info["url"]
    if d.metadata["Name"]:
        out.append([d.metadata["Name"], d.version, url])
print(json.dumps(out))
'"""

# What a bare `python -m venv` (or the python image) holds before anything is installed:
# the packaging tools, which every environment brings and `pip freeze` leaves out too.
# Listed only when the run asked for them by name.
BARE_ENVIRONMENT = frozenset({"pip", "setuptools", "wheel", "distribute"})


def _name(spec: str) -> str:
    """A requirement's project name, normalised as PEP 503 compares them."""
    name = re.split(r"[\[<>=!~ ;@]", spec, maxsplit=1)[0].strip()
    return re.sub(r"[-_.]+", "-", name).lower()


def requested_packages(template: EnvTemplate, layers: list[Layer]) -> list[str]:
    """Every package asked for by name during the run, base packages first, in order, once."""
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


def _installed(freeze_output: str) -> dict[str, str] | None:
    """name -> requirement line for each distribution of the environment (the first of a
    name wins, as on sys.path); None when the listing cannot be read."""
    try:
        rows = json.loads(freeze_output.strip().splitlines()[-1])
        lines: dict[str, str] = {}
        for name, version, url in rows:
            lines.setdefault(_name(name), f"{name} @ {url}" if url else f"{name}=={version}")
        return lines
    except (IndexError, ValueError, TypeError):
        return None


async def python_requirements(box: Sandbox, template: EnvTemplate, files: dict[str, str]) -> dict[str, str]:
    """requirements.txt: the project's own lines, then every package the environment holds, pinned.

    Derived from the environment, not from the install actions: a package a command
    installed (``pip install x`` as a command, a setup script) is in the output's
    manifest too. What the run asked for comes first, in order; what those pulled in
    follows by name. The packaging tools a bare environment has are left out."""
    freeze = await box.list_environment(FREEZE, timeout=120)
    installed = _installed(freeze.stdout) if freeze.ok else None
    asked = requested_packages(template, box.layers)
    existing = [ln.strip() for ln in files.get(template.manifest, "").splitlines() if ln.strip()]
    have = {_name(ln) for ln in existing if not ln.startswith(("#", "-"))}
    lines = list(existing)
    if installed is None:
        # The environment could not be listed (its python is broken): what was asked for,
        # unpinned, rather than no manifest at all.
        log.warning("could not list the environment's packages: %s", freeze.output[-500:])
        wanted = [(_name(spec), spec) for spec in asked]
    else:
        rest = sorted(name for name in installed if name not in BARE_ENVIRONMENT)
        wanted = [(name, installed[name]) for name in [*map(_name, asked), *rest] if name in installed]
    for name, line in wanted:
        if name not in have:
            have.add(name)
            lines.append(line)
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
