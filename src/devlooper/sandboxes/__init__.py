"""Sandbox backends by name, imported lazily so optional SDKs stay optional."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from ..errors import ConfigError
from ..layers import Layer
from ..templates.base import EnvTemplate
from .base import (
    ExecResult,
    Sandbox,
    SandboxAuthError,
    SandboxError,
    SandboxGoneError,
    SandboxSpec,
    SandboxStartupError,
    SandboxTimeoutError,
)

# name -> "module:Class"
BACKENDS: dict[str, str] = {
    "local": "devlooper.sandboxes.local:LocalSandbox",
    "e2b": "devlooper.sandboxes.e2b:E2BSandbox",
    "modal": "devlooper.sandboxes.modal:ModalSandbox",
}


def sandbox_class(name: str) -> type[Sandbox]:
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ConfigError(f"unknown sandbox {name!r}; known: {', '.join(BACKENDS)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def make_sandbox(
    name: str,
    template: EnvTemplate,
    layers: Sequence[Layer] = (),
    run_id: str = "run",
    *,
    layer_network: bool = True,
    isolation: str | None = None,
    lifetime: float | None = None,
    settings: dict | None = None,
) -> Sandbox:
    """Construct (not start) a sandbox of backend ``name``."""
    spec = SandboxSpec(
        template=template,
        layers=list(layers),
        run_id=run_id,
        layer_network=layer_network,
        isolation=isolation,
        lifetime=lifetime,
        settings=settings,
    )
    return sandbox_class(name)(spec)


__all__ = [
    "BACKENDS",
    "ExecResult",
    "Sandbox",
    "SandboxAuthError",
    "SandboxError",
    "SandboxGoneError",
    "SandboxSpec",
    "SandboxStartupError",
    "SandboxTimeoutError",
    "make_sandbox",
    "sandbox_class",
]
