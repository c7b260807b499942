"""The manifest that lets a finished project reproduce its environment."""

from __future__ import annotations

import re
import shlex

from .sandboxes.base import Sandbox
from .state import Layer
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


async def python_requirements(box: Sandbox, template: EnvTemplate, files: dict[str, str]) -> str:
    """requirements.txt: the project's own lines, then each installed package pinned."""
    # importlib.metadata answers in tens of milliseconds where `pip freeze` takes half a second.
    freeze = await box.exec(FREEZE, timeout=120)
    pinned = {}
    for line in freeze.stdout.splitlines():
        if "==" in line:
            pinned[_name(line.split("==")[0])] = line.strip()
    existing = [ln.strip() for ln in files.get("requirements.txt", "").splitlines() if ln.strip()]
    have = {_name(ln) for ln in existing if not ln.startswith("#")}
    lines = list(existing)
    for spec in requested_packages(template, box.layers):
        name = _name(spec)
        if name not in have:
            have.add(name)
            lines.append(pinned.get(name, spec))
    return "\n".join(lines) + "\n"


async def build_manifest(box: Sandbox, template: EnvTemplate, files: dict[str, str]) -> dict[str, str]:
    """Files to add to the output so it installs and tests outside devlooper."""
    if template.runtime == "python":
        return {template.manifest: await python_requirements(box, template, files)}
    return {}
