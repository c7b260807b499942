"""Where a server's clients may write: ``output_dir`` and ``record`` stay under a root.

A client of a LangGraph API server (``langgraph dev``, ``langgraph up``, LangGraph
Platform) chooses the run's ``context``, paths included, and the server's user is
the one who writes those files. So in a process that serves clients, the paths of
every run that :mod:`devlooper.runner` does not drive are confined to the server's
root, ``DEVLOOPER_SERVER_ROOT`` (default: ``server`` in the user data directory):

- a relative path is resolved under the root; an absolute one must lie inside it;
  links are resolved before the check, so a link cannot lead out;
- the output directory must be new or empty: there is no ``--force`` over the API.

The CLI and the Python API (``run``/``resume``, or a compiled graph in a program
that does not serve clients) act for the machine's user and are not confined.
Neither mark can be forged by a client, who controls only ``context`` and
``configurable``: one is the process (whether it imported the server), the other a
context variable set by the runner in this process for the runs it drives.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path

from platformdirs import user_data_dir

from .context import Context
from .errors import ConfigError

ROOT_VARIABLE = "DEVLOOPER_SERVER_ROOT"
# The package every LangGraph API server (dev, up, Platform) runs the graph from.
SERVER_PACKAGE = "langgraph_api"



class ServerPathError(ConfigError, ValueError):
    """A path a server client may not use. Also a ValueError: the LangGraph server
    shows a ValueError's message to its client, and hides other errors' messages."""


# Copied into every task a run starts, so each node of a run driven here sees it.
_local_caller: ContextVar[bool] = ContextVar("devlooper_local_caller", default=False)


@contextmanager
def local_caller() -> Iterator[None]:
    """Runs started inside act for the machine's user: their paths are not confined."""
    token = _local_caller.set(True)
    try:
        yield
    finally:
        _local_caller.reset(token)


def serves_clients() -> bool:
    """Whether this process is a LangGraph API server, whose runs come from its clients."""
    return SERVER_PACKAGE in sys.modules


def server_root() -> Path:
    """The directory a server's clients may write under (links resolved)."""
    configured = os.environ.get(ROOT_VARIABLE)
    root = Path(configured).expanduser() if configured else Path(user_data_dir("devlooper")) / "server"
    return root.resolve()


def must_confine() -> bool:
    """Whether the running graph serves a client: a server process, a run not driven by the runner."""
    return serves_clients() and not _local_caller.get()


def confine(ctx: Context) -> Context:
    """The context with its paths resolved under the server's root, for a run a client
    started; a :class:`ConfigError` for a path outside it or a non-empty output.
    It touches the disk: call it off the event loop."""
    if not must_confine():
        return ctx
    root = server_root()
    changes: dict[str, str] = {}
    if ctx.output_dir:
        out = _inside(root, ctx.output_dir, "output_dir")
        if out.exists() and not (out.is_dir() and not any(out.iterdir())):
            raise ServerPathError(
                f"output_dir {out} exists and is not an empty directory; a server client cannot "
                "replace files: choose a new output_dir"
            )
        changes["output_dir"] = str(out)
    if ctx.record:
        cassette = _inside(root, ctx.record, "record")
        if cassette.is_dir():
            raise ServerPathError(f"record {cassette} is a directory; name a cassette file")
        # The cassette is rewritten after every model call; its folder may be new.
        cassette.parent.mkdir(parents=True, exist_ok=True)
        changes["record"] = str(cassette)
    return replace(ctx, **changes) if changes else ctx


def _inside(root: Path, given: str, name: str) -> Path:
    """``given`` resolved under ``root`` (links followed); an error when it lies elsewhere."""
    # No expanduser: "~" would be the server user's home, which a client does not choose.
    path = (root / given).resolve()  # an absolute ``given`` replaces ``root``
    if path == root or not path.is_relative_to(root):
        raise ServerPathError(
            f"{name} {given!r} is outside the server's root {root} ({ROOT_VARIABLE}): "
            "a server client may only write under it; give a path relative to it"
        )
    return path
