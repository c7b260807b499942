"""Chat models: construction, replay and recording, and the two ways nodes ask.

Every model call carries a *call key* such as ``diagnose:2`` or
``fix_file:2:voronoi/core.py`` in its run metadata. A replayed model answers
by that key, not by call order, so replay stays deterministic when files are
generated or fixed concurrently. The same key names the call in LangSmith.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, PrivateAttr

from . import events
from .errors import CassetteError, ConfigError

CALL_KEY = "devlooper_call"
REPLAY_PREFIX = "replay:"
T = TypeVar("T", bound=BaseModel)

Reply = str | dict | Callable[[list[BaseMessage]], str | dict]


# --- replay ------------------------------------------------------------------
class ReplayChatModel(BaseChatModel):
    """Answers each call from a cassette entry whose key matches the call key.

    Entries are tried exact key first, then as ``fnmatch`` patterns in order
    (``diagnose:*`` answers every diagnosis). A structured-output call gets the
    entry's dict back as a tool call, so ``with_structured_output`` works as
    with a real tool-calling model. In tests a reply may be a callable of the
    messages, to script replies that depend on the prompt.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    entries: list[dict[str, Any]]
    source: str = "<memory>"
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _seen: dict[str, int] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_replies(cls, replies: dict[str, Reply], **kw: Any) -> ReplayChatModel:
        return cls(entries=[{"key": k, "reply": v} for k, v in replies.items()], **kw)

    @classmethod
    def from_file(cls, path: str | Path) -> ReplayChatModel:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"cassette not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"cassette {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("calls"), list):
            raise ConfigError(f"cassette {path} has no 'calls' list")
        return cls(entries=data["calls"], source=str(path))

    @property
    def _llm_type(self) -> str:
        return "replay"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _entry(self, key: str | None) -> dict[str, Any]:
        if key is None:
            raise CassetteError("a replayed model was called without a call key")
        matches = [e for e in self.entries if e["key"] == key] or [
            e for e in self.entries if fnmatch.fnmatchcase(key, e["key"])
        ]
        if not matches:
            raise CassetteError(f"cassette {self.source} has no reply for call {key!r}")
        with self._lock:  # a key seen again gets its next entry, the last one repeating
            n = self._seen.get(key, 0)
            self._seen[key] = n + 1
        return matches[min(n, len(matches) - 1)]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        key = (run_manager.metadata if run_manager else {}).get(CALL_KEY)
        entry = self._entry(key)
        reply = entry["reply"]
        if callable(reply):
            reply = reply(messages)
        tools = kwargs.get("tools")
        args = _arguments(reply) if tools else None
        if args is not None:
            name = tools[0]["function"]["name"]
            message = AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{key}"}])
        else:  # plain text, or a structured call answered in words (recorded as such): no tool call
            message = AIMessage(content=reply if isinstance(reply, str) else json.dumps(reply))
        usage = entry.get("usage") or {}
        if usage:
            message.usage_metadata = {
                "input_tokens": usage.get("input_tokens", 0),
                "output_tokens": usage.get("output_tokens", 0),
                "total_tokens": usage.get("input_tokens", 0) + usage.get("output_tokens", 0),
            }
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop, run_manager, **kwargs)


def _arguments(reply: str | dict) -> dict | None:
    """A structured reply's arguments: a dict, or a string holding a JSON object; None for words."""
    if isinstance(reply, dict):
        return reply
    try:
        value = json.loads(reply)
    except (json.JSONDecodeError, TypeError):
        return None
    return value if isinstance(value, dict) else None


# --- recording ---------------------------------------------------------------
class Recorder:
    """Appends every reply to a cassette file, rewritten whole after each call."""

    _lock = threading.Lock()

    def __init__(self, path: str | Path, model: str) -> None:
        self.path = Path(path)
        self.data = {"version": 1, "model": model, "calls": []}

    def add(self, key: str, reply: str | dict, usage: dict[str, int]) -> None:
        with self._lock:
            self.data["calls"].append({"key": key, "reply": reply, "usage": usage})
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            tmp.write_text(json.dumps(self.data, indent=1))
            tmp.replace(self.path)


_recorders: dict[str, Recorder] = {}


def recorder_for(path: str | None, model: str) -> Recorder | None:
    if not path:
        return None
    if path not in _recorders:
        _recorders[path] = Recorder(path, model)
    return _recorders[path]


def continue_recording(path: str, model: str) -> Recorder:
    """Keep the calls already in the cassette at ``path``: a resumed run adds to them
    instead of starting the file again (which would lose what was recorded before a crash)."""
    recorder = recorder_for(path, model)
    assert recorder is not None
    try:
        earlier = json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return recorder
    if isinstance(earlier, dict) and isinstance(earlier.get("calls"), list) and not recorder.data["calls"]:
        recorder.data["calls"] = earlier["calls"]
    return recorder


# --- construction --------------------------------------------------------------
def missing_key_message() -> str:
    # A server's client sets no flags and no environment: name what it can change.
    from .server_root import must_confine

    if must_confine():
        return (
            "OPENAI_API_KEY is not set in the server's environment: set it where the server runs, "
            "or give the run a context with base_url (an OpenAI-compatible server), "
            "model 'provider:model' for another provider, or model 'replay:PATH' to replay a cassette."
        )
    return (
        "OPENAI_API_KEY is not set: export it, or pass --base-url for an OpenAI-compatible "
        "server, --model provider:model for another provider, or --model replay:PATH to "
        "replay a cassette (try `devlooper demo`)."
    )


def load_chat_model(spec: str, base_url: str | None = None) -> BaseChatModel:
    """Build the chat model named ``spec`` ("provider:model" or "replay:PATH")."""
    if spec.startswith(REPLAY_PREFIX):
        return ReplayChatModel.from_file(spec[len(REPLAY_PREFIX) :])
    provider, sep, name = spec.partition(":")
    if not sep:
        provider, name = "openai", spec
    kwargs: dict[str, Any] = {}
    if base_url:
        kwargs["base_url"] = base_url
        if provider == "openai" and not os.environ.get("OPENAI_API_KEY"):
            kwargs["api_key"] = "not-needed"  # local servers accept any key
    elif provider == "openai" and not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError(missing_key_message())
    from langchain.chat_models import init_chat_model

    try:
        return init_chat_model(name, model_provider=provider, **kwargs)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"cannot load model {spec!r}: {exc}") from None


# --- asking ----------------------------------------------------------------------
class MalformedOutput(Exception):
    """The model's structured reply did not validate, even after a retry."""


def call_config(key: str) -> dict[str, Any]:
    step = key.split(":", 1)[0]
    return {"run_name": f"devlooper.{step}", "tags": ["devlooper", step], "metadata": {CALL_KEY: key}}


def usage_of(message: BaseMessage | None) -> dict[str, int]:
    meta = getattr(message, "usage_metadata", None) or {}
    return {"input_tokens": meta.get("input_tokens", 0), "output_tokens": meta.get("output_tokens", 0), "calls": 1}


async def _invoke(runnable: Any, messages: list[BaseMessage], key: str) -> Any:
    """``runnable.ainvoke`` between two custom stream events, ``model_start`` and
    ``model_end`` (with its seconds and tokens): what a live view shows while a
    model answers (``stream_mode="custom"``, locally and over a server)."""
    started = time.monotonic()
    events.emit({"event": "model_start", "key": key, "step": key.split(":", 1)[0]})
    ok, out = False, None
    try:
        out = await runnable.ainvoke(messages, config=call_config(key))
        ok = True
        return out
    finally:
        raw = out.get("raw") if isinstance(out, dict) else out
        events.emit({
            "event": "model_end", "key": key, "step": key.split(":", 1)[0], "ok": ok,
            "seconds": round(time.monotonic() - started, 3), **(usage_of(raw) if ok else {}),
        })


async def ask_text(
    model: BaseChatModel, messages: list[BaseMessage], *, key: str, recorder: Recorder | None = None
) -> tuple[str, dict[str, int]]:
    reply = await _invoke(model, messages, key)
    text = reply.text if isinstance(reply.text, str) else reply.text()
    usage = usage_of(reply)
    if recorder:  # the file is rewritten in a thread: a server's event loop must not block
        await asyncio.to_thread(recorder.add, key, text, usage)
    return text, usage


def _said(raw: BaseMessage | None, parsed: BaseModel | None) -> str | dict:
    """A structured attempt as a cassette keeps it: the validated object, else the
    arguments the model gave (a dict, or the text of arguments that were not JSON),
    else its words. Replayed, each is as valid or invalid as it was."""
    if parsed is not None:
        return parsed.model_dump(mode="json")
    calls = getattr(raw, "tool_calls", None) or []
    if calls:
        return calls[0]["args"]
    invalid = getattr(raw, "invalid_tool_calls", None) or []
    if invalid:
        return str(invalid[0].get("args") or "")
    if raw is None:
        return ""
    return raw.text if isinstance(raw.text, str) else raw.text()


async def ask_structured(
    model: BaseChatModel,
    messages: list[BaseMessage],
    schema: type[T],
    *,
    key: str,
    recorder: Recorder | None = None,
    retries: int = 1,
) -> tuple[T, dict[str, int]]:
    """Ask for ``schema``; on a reply that does not validate, show the error and ask again."""
    runnable = model.with_structured_output(schema, include_raw=True)
    total = {"input_tokens": 0, "output_tokens": 0, "calls": 0}
    attempt_key = key
    for attempt in range(retries + 1):
        out = await _invoke(runnable, messages, attempt_key)
        raw, parsed = out.get("raw"), out.get("parsed")
        for name, value in usage_of(raw).items():
            total[name] += value
        if recorder:
            # Every attempt, valid or not, under the key replay asks for it by: a replay
            # takes the same turns (retry, give up) as the recorded session did.
            await asyncio.to_thread(recorder.add, attempt_key, _said(raw, parsed), usage_of(raw))
        if parsed is not None:
            return parsed, total
        error = out.get("parsing_error") or "there was no structured reply (the tool was not called)"
        messages = [
            *messages,
            HumanMessage(f"Your reply did not match the required schema:\n{error}\nReply again, fixing that."),
        ]
        attempt_key = f"{key}#retry{attempt + 1}"
    raise MalformedOutput(f"{key}: the model's reply did not validate: {error}")
