"""Sandbox backends by name, imported lazily so optional SDKs stay optional."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from ..errors import ConfigError
from ..state import Layer
from ..templates.base import EnvTemplate
from .base import ExecResult, Sandbox, SandboxError, SandboxSpec, SandboxStartupError, SandboxTimeoutError

# name -> "module:Class"
BACKENDS: dict[str, str] = {
    "local": "devlooper.sandboxes.local:LocalSandbox",
}


def sandbox_class(name: str) -> type[Sandbox]:
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ConfigError(f"unknown sandbox {name!r}; known: {', '.join(BACKENDS)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def make_sandbox(name: str, template: EnvTemplate, layers: Sequence[Layer] = (), run_id: str = "run") -> Sandbox:
    """Construct (not start) a sandbox of backend ``name``."""
    return sandbox_class(name)(SandboxSpec(template=template, layers=list(layers), run_id=run_id))


__all__ = [
    "BACKENDS",
    "ExecResult",
    "Sandbox",
    "SandboxError",
    "SandboxSpec",
    "SandboxStartupError",
    "SandboxTimeoutError",
    "make_sandbox",
    "sandbox_class",
]
