"""devlooper: a program-synthesis agent that writes a project and fixes it until its tests pass.

Public API::

    from devlooper import graph, builder, Context, run, resume, history

See "Python API" in the README.

The names are imported on first use: ``devlooper --help`` and the commands that
need no graph start without importing LangGraph or LangChain.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

# name -> the module that defines it
_PUBLIC = {
    "Context": "context",
    "builder": "graph",
    "graph": "graph",
    "route_after_test": "graph",
    "ReplayChatModel": "models",
    "load_chat_model": "models",
    "compile_graph": "runner",
    "history": "runner",
    "open_saver": "runner",
    "resume": "runner",
    "run": "runner",
    "InputState": "state",
    "OutputState": "state",
    "State": "state",
}

__all__ = sorted(_PUBLIC)


def _public(name: str):
    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)


class _Package(types.ModuleType):
    """``devlooper.graph`` is the compiled graph (``langgraph.json`` names it), not the
    submodule of the same name, whose import would otherwise replace it here."""

    @property
    def graph(self):
        return _public("graph")

    @graph.setter
    def graph(self, value) -> None:
        pass  # the import system recording the submodule: the public name stays the graph


def __getattr__(name: str):
    if name in _PUBLIC:
        return _public(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


sys.modules[__name__].__class__ = _Package
