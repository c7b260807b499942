"""Run-time configuration, passed to the graph as ``context`` (not state).

Every field that was not given falls back to an environment variable
``DEVLOOPER_<FIELD>``, so a server deployment is configured the same way as the
CLI. A value that was given always wins, even when it equals the default:
``--sandbox local`` with ``DEVLOOPER_SANDBOX=e2b`` set runs locally. Studio
renders the field descriptions in its configuration panel; the fields marked
``SkipJsonSchema`` are not in it (``chat_model`` and ``embedding_model`` are
Python-only; the template is given in the input).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field, fields
from typing import Any

from pydantic.json_schema import SkipJsonSchema
from .budgets import MAX_PROMPT_TOKENS

DEFAULT_MODEL = "openai:gpt-5.1"
REPLAY_PREFIX = "replay:"  # a model name that replays a recorded cassette
# How a structured reply is asked for. Local servers differ in what they support:
# json_schema (response_format with the schema: OpenAI, vLLM, llama.cpp, recent Ollama),
# function_calling (a forced tool call), json_mode (any JSON object; the schema goes in the prompt).
# Here, not in ``models``, so that the CLI's options need no model library.
STRUCTURED_MODES = ("json_schema", "function_calling", "json_mode")


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
    embeddings: str | None = field(
        default=None,
        metadata={
            "description": "Embedding model as provider:model (init_embeddings, e.g. openai:text-embedding-3-small): "
            "the code a prompt shows is then chosen by BM25 and embedding similarity together. None: BM25 alone."
        },
    )
    # Python only, like chat_model: any LangChain ``Embeddings`` object.
    embedding_model: SkipJsonSchema[Any] = field(
        default=None,
        metadata={"description": "A LangChain Embeddings object used instead of `embeddings` (Python API only)."},
    )
    embeddings_base_url: str | None = field(
        default=None,
        metadata={
            "description": "Base URL of the OpenAI-compatible server that serves `embeddings`; "
            "default: base_url (one local server for both)."
        },
    )
    structured_output: str = field(
        default="json_schema",
        metadata={
            "description": "How structured replies (plans) are asked for: json_schema (response_format with the "
            "schema), function_calling (a forced tool call) or json_mode (any JSON, the schema in the prompt). "
            "Local servers differ in what they support: see docs/models.md."
        },
    )
    max_prompt_tokens: int = field(
        default=MAX_PROMPT_TOKENS,
        metadata={
            "description": "Tokens one prompt may hold (counted with tiktoken where it is available, else "
            "estimated at 4 characters a token); what is over is clipped, largest parts first."
        },
    )
    max_tokens: int = field(
        default=0,
        metadata={
            "description": "Tokens (input and output) the whole run may use; 0 is no limit. Over it the run "
            "stops before its next iteration with status budget, resumable with a bigger budget."
        },
    )
    max_cost: float = field(
        default=0.0,
        metadata={
            "description": "US dollars the whole run may cost, estimated from the price table; 0 is no limit. "
            "Over it the run stops with status budget, like max_tokens."
        },
    )
    prices: str | None = field(
        default=None,
        metadata={
            "description": "A JSON file of model prices that extends the built-in table: "
            '{"model-name": {"input": USD per million tokens, "output": USD per million tokens}}.'
        },
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
    # 16: one call per file for a typical project (the limit is reached only with more
    # files), below the concurrent-request limits of the hosted providers' lower tiers;
    # a 429 is retried by the one retry layer (models.py) after the time it asks for.
    max_concurrency: int = field(
        default=16,
        metadata={"description": "Model calls in flight at once when files are written or fixed "
                  "(every file of a plan at once, up to this many)."},
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
    commands: str | None = field(
        default=None,
        metadata={
            "description": "What happens to a `command` action of a plan: allow (run it), deny (refuse it; "
            "the refusal goes back to the model) or ask (pause and ask a person). Default: ask when "
            "interactive, else allow. Commands run in the sandbox either way."
        },
    )
    allow_commands: list[str] = field(
        default_factory=list,
        metadata={
            "description": "Command prefixes that always run without asking (e.g. 'npm run lint'), "
            "whatever the policy; a prefix matches whole words."
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
            if env is None or f.name in given or f.name in UNRECORDED:
                continue
            if f.name == "allow_commands":  # a list: comma-separated in the environment
                self.allow_commands = [p.strip() for p in env.split(",") if p.strip()]
                continue
            kind = type(f.default) if f.default is not None else str
            setattr(self, f.name, _flag(env) if kind is bool else kind(env))

    def given(self) -> frozenset[str]:
        """The fields set explicitly when this context was made (not defaults, not DEVLOOPER_*)."""
        return getattr(self, "_given", frozenset())

    def command_policy(self) -> str:
        """The effective policy for `command` actions: ask when interactive, unless set."""
        return self.commands or ("ask" if self.interactive else "allow")


# Settings that are objects, not data: they cannot be recorded, a resume passes them again.
UNRECORDED = frozenset({"chat_model", "embedding_model"})
COMMAND_POLICIES = ("allow", "deny", "ask")


def settings_of(ctx: Context) -> dict[str, Any]:
    """The context as JSON-able data: kept with the run (its state and checkpoint metadata),
    so whatever continues it uses the settings it started with."""
    from pathlib import Path  # only here: paths are resolved for a run that may resume elsewhere

    data = {f.name: getattr(ctx, f.name) for f in fields(ctx) if f.name not in UNRECORDED}
    if ctx.chat_model is not None:
        # The run did not use `model`: a resume must be given the model again, not the default.
        data["model"] = None
        data["chat_model_class"] = type(ctx.chat_model).__name__
    if ctx.embedding_model is not None:
        # Likewise: a resume without the object again ranks with BM25 alone, not the default.
        data["embeddings"] = None
        data["embedding_model_class"] = type(ctx.embedding_model).__name__
    if data.get("output_dir"):
        # A resume may run from another directory: keep where the output was meant to go.
        data["output_dir"] = str(Path(data["output_dir"]).expanduser().resolve())
    return data


def with_settings(ctx: Context, settings: dict[str, Any] | None) -> Context:
    """``ctx`` with every field it was not explicitly given taken from the run's recorded
    ``settings``: the thread's settings win over defaults and ``DEVLOOPER_*``, an explicit
    value (a client's override) wins over them."""
    if not settings:
        return ctx
    names = {f.name for f in fields(Context)} - UNRECORDED
    given = ctx.given()
    fill = {k: v for k, v in settings.items() if k in names and k not in given and not (k == "model" and v is None)}
    if not fill:
        return ctx
    data = {f.name: getattr(ctx, f.name) for f in fields(ctx) if f.name in given or f.name in UNRECORDED}
    return Context(**{**data, **fill})


# The generated __init__ cannot tell a value that was given from its default; this
# wrapper can, and every entry point (the CLI, the Python API, a server's context
# dict, which LangGraph turns into ``Context(**context)``) goes through it.
_dataclass_init = Context.__init__


@functools.wraps(_dataclass_init)
def _init(self: Context, **given: Any) -> None:
    _dataclass_init(self, **given)
    self._given = frozenset(given)
    self._fill_from_env(set(given))


Context.__init__ = _init  # type: ignore[method-assign]


def _flag(value: str) -> bool:
    """bool("0") is True: read an environment flag by its words instead."""
    return value.strip().lower() in ("1", "true", "yes", "on")
