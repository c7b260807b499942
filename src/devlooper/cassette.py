"""Cassettes: replaying a recorded session, and recording one.

A cassette is a JSON file of model replies, each under the *call key* of the
call that got it (``diagnose:2``, ``plan:2#retry1``). A replayed model answers
by that key, not by call order, so replay stays deterministic when files are
generated or fixed concurrently. Every attempt of a structured call is kept,
valid or not, so a replay takes the same turns (retry, give up) as the session.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr

from .errors import CassetteError, ConfigError

CALL_KEY = "devlooper_call"  # the run-metadata entry that carries a call's key

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

    def with_structured_output(self, schema: Any, *, include_raw: bool = False, method: str | None = None, **kw: Any):
        # A cassette holds the arguments whatever mode recorded them: every mode replays
        # as a tool call, which the base class parses.
        return super().with_structured_output(schema, include_raw=include_raw, **kw)

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


def forget_recorder(path: str | None) -> None:
    """A run ended: its recorder leaves the process (the cassette file keeps the calls;
    a resume continues it with ``continue_recording``)."""
    if path:
        _recorders.pop(path, None)


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
