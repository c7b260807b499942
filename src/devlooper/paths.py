"""Project-relative paths: the one place that decides what may be written.

Every path that comes from a model goes through ``normalize``; every file
operation of a sandbox goes through ``resolve_inside``. A path that would leave
the workspace is rejected, never silently rewritten.
"""

from __future__ import annotations

import posixpath
from pathlib import Path, PurePosixPath

from .errors import DevlooperError

# Directories devlooper owns inside a workspace; the model may not write there.
RESERVED_DIRS = (".devlooper", ".git")


class UnsafePathError(DevlooperError, ValueError):
    """A path that is absolute, escapes the workspace or names a reserved place."""


def normalize(path: str) -> str:
    """Return a clean relative POSIX path, or raise ``UnsafePathError``."""
    raw = (path or "").strip().replace("\\", "/")
    if not raw:
        raise UnsafePathError("empty path")
    if raw.startswith("/") or PurePosixPath(raw).drive or (len(raw) > 1 and raw[1] == ":"):
        raise UnsafePathError(f"absolute path not allowed: {path!r}")
    clean = posixpath.normpath(raw)
    if clean == "." or clean == ".." or clean.startswith("../"):
        raise UnsafePathError(f"path escapes the workspace: {path!r}")
    if "\x00" in clean:
        raise UnsafePathError(f"path contains a NUL byte: {path!r}")
    if clean.split("/", 1)[0] in RESERVED_DIRS:
        raise UnsafePathError(f"path is reserved for devlooper: {path!r}")
    return clean


def resolve_inside(root: Path, path: str) -> Path:
    """Join ``path`` to ``root`` and make sure the result (symlinks followed) stays inside."""
    target = (root / normalize(path)).resolve()
    if not target.is_relative_to(root.resolve()):
        raise UnsafePathError(f"path escapes the workspace through a link: {path!r}")
    return target
