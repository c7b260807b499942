"""devlooper: a program-synthesis agent that writes a project and fixes it until its tests pass.

Public API::

    from devlooper import graph, builder, Context, run, resume, history

See "Python API" in the README.
"""

__version__ = "0.1.0"

from .context import Context  # noqa: E402
from .graph import builder, graph, route_after_test  # noqa: E402
from .models import ReplayChatModel, load_chat_model  # noqa: E402
from .runner import compile_graph, history, open_saver, resume, run  # noqa: E402
from .state import InputState, OutputState, State  # noqa: E402

__all__ = [
    "Context",
    "InputState",
    "OutputState",
    "ReplayChatModel",
    "State",
    "builder",
    "compile_graph",
    "graph",
    "history",
    "load_chat_model",
    "open_saver",
    "resume",
    "route_after_test",
    "run",
]
