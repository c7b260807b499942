"""Run-time configuration, passed to the graph as ``context`` (not state).

Every field that was not given falls back to an environment variable
``DEVLOOPER_<FIELD>``, so a server deployment is configured the same way as the
CLI. A value that was given always wins, even when it equals the default:
``--sandbox local`` with ``DEVLOOPER_SANDBOX=e2b`` set runs locally. Studio
renders the field descriptions in its configuration panel; the fields marked
``SkipJsonSchema`` are not in it (``chat_model`` is Python-only; the template
is given in the input).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field, fields
from typing import Any

from pydantic.json_schema import SkipJsonSchema

DEFAULT_MODEL = "openai:gpt-5.1"


@dataclass(kw_only=True)
class Context:
    model: str = field(
        default=DEFAULT_MODEL,
        metadata={
            "description": "Chat model as provider:model (init_chat_model), or "
            "replay:PATH to replay a recorded cassette."
        },
    )
    # Python only: an object cannot come from a form or a JSON context, so it is left
    # out of the JSON schema (Studio's configuration panel) and stays a keyword here.
    chat_model: SkipJsonSchema[Any] = field(
        default=None,
        metadata={"description": "A LangChain chat model object used instead of `model` (Python API only)."},
    )
    base_url: str | None = field(
        default=None,
        metadata={"description": "Base URL of an OpenAI-compatible server (Ollama, vLLM, llama.cpp)."},
    )
    record: str | None = field(
        default=None,
        metadata={"description": "Write every model reply to this cassette file."},
    )
    sandbox: str = field(
        default="local",
        metadata={"description": "Where generated code runs: local, e2b or modal."},
    )
    isolation: str = field(
        default="bwrap",
        metadata={
            "description": "How the local sandbox confines generated code: bwrap (bubblewrap, required by "
            "default; the run refuses to start without it) or none (a plain subprocess: accept the risk)."
        },
    )
    # Not in the JSON schema: a server client names the template in the input, the one
    # place Studio shows it; this field is the CLI's --template and DEVLOOPER_TEMPLATE.
    template: SkipJsonSchema[str] = field(
        default="python",
        metadata={
            "description": "Environment template used when the input names none: python, react, rust, "
            "or the path of a user template (.toml file or folder)."
        },
    )
    max_iterations: int = field(
        default=10,
        metadata={"description": "Test runs allowed before the run gives up."},
    )
    test_timeout: float = field(
        default=300.0,
        metadata={"description": "Seconds a test run may take before it is killed."},
    )
    install_timeout: float = field(
        default=600.0,
        metadata={"description": "Seconds an install or environment command may take."},
    )
    layer_network: bool = field(
        default=True,
        metadata={
            "description": "Whether installs and environment commands may use the network "
            "(tests never can, on backends that can block it)."
        },
    )
    max_concurrency: int = field(
        default=4,
        metadata={"description": "Model calls in flight at once when files are written or fixed."},
    )
    output_limit: int = field(
        default=16_000,
        metadata={"description": "Characters of test output shown to the model (head and tail kept)."},
    )
    output_dir: str | None = field(
        default=None,
        metadata={"description": "Directory the finished project is written to; none keeps it in the state only."},
    )
    loop_window: int = field(
        default=3,
        metadata={
            "description": "K: runs with the same failure, or without more passing tests, that count as a loop."
        },
    )
    interactive: bool = field(
        default=False,
        metadata={
            "description": "When a warned model is still looping, pause (interrupt) and ask a human for "
            "guidance instead of stopping with status stuck."
        },
    )
    keep_best: bool = field(
        default=False,
        metadata={
            "description": "When a run ends without green, write the iteration with the most passing "
            "tests (marked as failing) instead of the last one."
        },
    )

    def _fill_from_env(self, given: set[str]) -> None:
        """Fields that were not given take ``DEVLOOPER_<FIELD>`` when it is set."""
        for f in fields(self):
            env = os.environ.get(f"DEVLOOPER_{f.name.upper()}")
            if env is None or f.name in given or f.name == "chat_model":
                continue
            kind = type(f.default) if f.default is not None else str
            setattr(self, f.name, _flag(env) if kind is bool else kind(env))


# The generated __init__ cannot tell a value that was given from its default; this
# wrapper can, and every entry point (the CLI, the Python API, a server's context
# dict, which LangGraph turns into ``Context(**context)``) goes through it.
_dataclass_init = Context.__init__


@functools.wraps(_dataclass_init)
def _init(self: Context, **given: Any) -> None:
    _dataclass_init(self, **given)
    self._fill_from_env(set(given))


Context.__init__ = _init  # type: ignore[method-assign]


def _flag(value: str) -> bool:
    """bool("0") is True: read an environment flag by its words instead."""
    return value.strip().lower() in ("1", "true", "yes", "on")
