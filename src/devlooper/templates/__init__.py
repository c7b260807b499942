"""Built-in environment templates and lookup by name."""

from __future__ import annotations

from ..errors import ConfigError
from .base import EnvTemplate
from .python import PYTHON

BUILTIN: dict[str, EnvTemplate] = {t.name: t for t in (PYTHON,)}


def get_template(name: str) -> EnvTemplate:
    """Return the template called ``name`` or raise a ``ConfigError`` listing the known ones."""
    try:
        return BUILTIN[name]
    except KeyError:
        known = ", ".join(sorted(BUILTIN))
        raise ConfigError(f"unknown template {name!r}; known: {known}") from None


__all__ = ["BUILTIN", "EnvTemplate", "get_template"]
