"""Environment layers: the ordered steps that changed a run's environment.

Both the graph state (which records them) and the sandboxes (which replay
them) import this module; neither depends on the other for it.
"""

from __future__ import annotations

from typing import Literal

from typing_extensions import NotRequired, TypedDict


class Layer(TypedDict):
    """One step that changed the environment, replayed in order to rebuild it."""

    kind: Literal["install", "command"]
    spec: str  # packages separated by spaces, or a shell command
    iteration: int
    # For a layer that sees the project (a command): the digest of the project files it ran
    # against. It is part of the layer's cache key, so a cached result is only reused for
    # the same files.
    # A cached entry of such a layer also keeps what the command changed in the project, and
    # a reuse makes those changes again: a warm cache gives what a cold one gives.
    workspace: NotRequired[str]
