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
    workspace: NotRequired[str]
    # For a command: a random id given when it first runs, and part of the cache key. A
    # command also changes the project, which a cached environment cannot replay: the
    # cache may stand in for it only when the state replays the layer (the state holds
    # what it did to the project), never when it runs anew, in this run or another.
    once: NotRequired[str]
