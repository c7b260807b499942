"""The model client: construction, and the two ways nodes ask (text, structured).

Every model call carries a *call key* such as ``diagnose:2`` or
``fix_file:2:voronoi/core.py`` in its run metadata: a replayed model
(:mod:`devlooper.cassette`) answers by it, and the same key names the call in
LangSmith.

A weak or faulty model never ends a run here:

- a structured reply that is not JSON or fails the schema is asked for again
  with the validation error, at most ``STRUCTURED_RETRIES`` times; then
  :class:`MalformedOutput` (a clean error the plan node records as a failed plan);
- a rate limit (429), a server error (5xx), a timeout or a dropped connection is
  retried in exactly this one layer (the SDK clients devlooper builds retry
  nothing), honouring ``Retry-After``, within ``MAX_RETRY_WAIT`` seconds in all;
  then :class:`ModelUnavailable`, which stops the run at its last checkpoint.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from pydantic import BaseModel, ValidationError

from .budgets import EMBEDDING_RETRIES, EMBEDDING_TIMEOUT, MAX_RETRY_WAIT, MODEL_RETRIES, STRUCTURED_RETRIES
from . import events
from .cassette import CALL_KEY, Recorder, ReplayChatModel, continue_recording, recorder_for
from .context import REPLAY_PREFIX, STRUCTURED_MODES
from .errors import ConfigError, DevlooperError

__all__ = [
    "CALL_KEY", "REPLAY_PREFIX", "STRUCTURED_MODES", "MalformedOutput", "ModelRejected", "ModelUnavailable",
    "Recorder", "ReplayChatModel", "ask_structured", "ask_text", "continue_recording", "load_chat_model",
    "load_embeddings", "recorder_for",
]

T = TypeVar("T", bound=BaseModel)

# Providers whose chat model takes ``max_retries``: theirs is set to 0, so this module's
# layer is the only one (the SDK's retries times ours would multiply the wait).
_RETRYING_CLIENTS = frozenset({"openai", "azure_openai", "anthropic", "groq", "mistralai", "fireworks", "together",
                               "deepseek", "xai"})


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
    if provider in _RETRYING_CLIENTS:
        kwargs["max_retries"] = 0
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


def load_embeddings(spec: str, base_url: str | None = None) -> Embeddings:
    """Build the embedding model named ``spec`` ("provider:model", as ``init_embeddings``
    takes it), with the chat model's handling of an OpenAI-compatible ``base_url``.
    Nothing is sent here: a bad spec is a ConfigError before any model call."""
    provider, sep, name = spec.partition(":")
    if not sep or not provider or not name:
        raise ConfigError(
            f"embedding model {spec!r} is not provider:model (e.g. openai:text-embedding-3-small, "
            "or openai:nomic-embed-text with an OpenAI-compatible base URL)"
        )
    kwargs: dict[str, Any] = {}
    if provider == "openai":
        kwargs.update(timeout=EMBEDDING_TIMEOUT, max_retries=EMBEDDING_RETRIES)
    if base_url:
        kwargs["base_url"] = base_url
        if provider == "openai":
            # Other servers than OpenAI's take text, not OpenAI's token ids (which the client
            # sends by default, after counting them with tiktoken).
            kwargs["check_embedding_ctx_length"] = False
            if not os.environ.get("OPENAI_API_KEY"):
                kwargs["api_key"] = "not-needed"  # local servers accept any key
    elif provider == "openai" and not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError(
            "OPENAI_API_KEY is not set for the embedding model: export it, or give the embeddings an "
            "OpenAI-compatible server (--embeddings-base-url, or --base-url for both models)"
        )
    from langchain.embeddings import init_embeddings

    try:
        return init_embeddings(name, provider=provider, **kwargs)
    except (ImportError, ValueError) as exc:
        # init_embeddings lists the providers it knows, one a line: one line here.
        why = " ".join(str(exc).replace(":\n  - ", ": ").replace("\n  - ", ", ").split())[:600]
        raise ConfigError(f"cannot load embedding model {spec!r}: {why}") from None


# --- errors ------------------------------------------------------------------------
class MalformedOutput(DevlooperError):
    """The model's structured reply did not validate, even after its retries."""

    def __init__(self, message: str, usage: dict[str, int] | None = None) -> None:
        super().__init__(message)
        self.usage = usage or {}  # what the failed attempts cost still counts


class ModelUnavailable(DevlooperError):
    """The model's server kept failing (rate limit, 5xx, timeouts) past the retry budget."""


class ModelRejected(DevlooperError):
    """The server refused the request itself (400/404/422): retrying cannot help."""


# --- the retry layer ------------------------------------------------------------------
def _status(exc: BaseException) -> int | None:
    """The HTTP status an SDK error carries (openai, anthropic, httpx all name it so)."""
    for holder in (exc, getattr(exc, "response", None)):
        code = getattr(holder, "status_code", None)
        if isinstance(code, int):
            return code
    return None


def _transient(exc: BaseException) -> bool:
    status = _status(exc)
    if status is not None:
        return status in (408, 409, 429) or status >= 500
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    # Connection and timeout errors of the SDKs (openai.APIConnectionError, httpx.ReadTimeout, a
    # connection the server dropped: httpx.RemoteProtocolError), by their class names.
    words = ("Timeout", "Connect", "NetworkError", "RemoteProtocol")
    return any(word in cls.__name__ for cls in type(exc).__mro__ for word in words)


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked to wait (``Retry-After``: seconds or an HTTP date)."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _backoff(attempt: int) -> float:
    return min(2.0**attempt, 30.0)


async def _with_retries(call: Callable[[], Awaitable[Any]], key: str) -> Any:
    """``call()``, retried on transient failures within the retry budget."""
    waited = 0.0
    for attempt in range(MODEL_RETRIES + 1):
        try:
            return await call()
        except Exception as exc:
            status = _status(exc)
            if not _transient(exc):
                if status in (400, 404, 413, 422):
                    raise ModelRejected(
                        f"{key}: the model server refused the request (HTTP {status}): {_first_line(exc)}"
                    ) from exc
                raise
            wait = _retry_after(exc)
            wait = _backoff(attempt) if wait is None else wait
            what = f"HTTP {status}" if status else type(exc).__name__
            if attempt == MODEL_RETRIES or waited + wait > MAX_RETRY_WAIT:
                raise ModelUnavailable(
                    f"{key}: the model server kept failing ({what}: {_first_line(exc)}) after "
                    f"{attempt + 1} attempt(s) and {waited:.0f}s of waiting; the run stopped at its last checkpoint"
                ) from exc
            waited += wait
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


# --- asking ----------------------------------------------------------------------
def call_config(key: str) -> dict[str, Any]:
    step = key.split(":", 1)[0]
    return {"run_name": f"devlooper.{step}", "tags": ["devlooper", step], "metadata": {CALL_KEY: key}}


def usage_of(message: BaseMessage | None) -> dict[str, int]:
    meta = getattr(message, "usage_metadata", None) or {}
    return {"input_tokens": meta.get("input_tokens", 0), "output_tokens": meta.get("output_tokens", 0), "calls": 1}


def _add(total: dict[str, int], used: dict[str, int], key: str) -> None:
    """Add one call's usage to ``total``: the run's totals and its step's (``diagnose.input_tokens``)."""
    step = key.split(":", 1)[0]
    for name, value in used.items():
        total[name] = total.get(name, 0) + value
        total[f"{step}.{name}"] = total.get(f"{step}.{name}", 0) + value


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
    reply = await _with_retries(lambda: _invoke(model, messages, key), key)
    text = _text(reply)
    usage = usage_of(reply)
    if recorder:  # the file is rewritten in a thread: a server's event loop must not block
        await asyncio.to_thread(recorder.add, key, text, usage)
    total: dict[str, int] = {}
    _add(total, usage, key)
    return text, total


def _said(raw: BaseMessage | None, parsed: Any) -> str | dict:
    """A structured attempt as a cassette keeps it: the arguments the model gave (a
    dict, valid or not, or the text of arguments that were not JSON), else its words.
    Replayed, each is as valid or invalid as it was."""
    if isinstance(parsed, dict):
        return parsed
    calls = getattr(raw, "tool_calls", None) or []
    if calls:
        return calls[0]["args"]
    invalid = getattr(raw, "invalid_tool_calls", None) or []
    if invalid:
        return str(invalid[0].get("args") or "")
    return "" if raw is None else _text(raw)


def _structured(model: BaseChatModel, schema: type[BaseModel], mode: str) -> Any:
    """The model bound to answer ``schema`` in ``mode``, parsed to a dict (validated by the caller:
    a pydantic schema handed to the client would make some clients raise on a bad reply)."""
    if mode not in STRUCTURED_MODES:
        raise ConfigError(f"structured output mode {mode!r} is not one of {', '.join(STRUCTURED_MODES)}")
    json_schema = schema.model_json_schema()
    try:
        return model.with_structured_output(json_schema, method=mode, include_raw=True)
    except (TypeError, ValueError, NotImplementedError):
        # A chat model (often a user's own) that knows one way only: tool calling.
        return model.with_structured_output(json_schema, include_raw=True)


def _text(message: BaseMessage) -> str:
    return message.text if isinstance(message.text, str) else message.text()


def _strict_json(text: str) -> tuple[dict | None, str | None]:
    """The JSON object a reply holds (a Markdown fence around it is allowed), or why not."""
    body = text.strip()
    fenced = re.fullmatch(r"```[\w-]*\s*\n(.*?)\n?```", body, flags=re.S)
    body = fenced.group(1) if fenced else body
    if not body:
        return None, None
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        return None, str(exc)
    return (value, None) if isinstance(value, dict) else (None, f"a JSON {type(value).__name__}, not an object")


def _schema_note(schema: type[BaseModel]) -> HumanMessage:
    return HumanMessage(
        "Reply with one JSON object, and nothing else, that validates against this JSON schema:\n"
        + json.dumps(schema.model_json_schema())
    )


def _validation_error(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors(include_url=False)
    )[:2000]


async def ask_structured(
    model: BaseChatModel,
    messages: list[BaseMessage],
    schema: type[T],
    *,
    key: str,
    recorder: Recorder | None = None,
    retries: int = STRUCTURED_RETRIES,
    mode: str = "json_schema",
) -> tuple[T, dict[str, int]]:
    """Ask for ``schema``; on a reply that does not validate, show the error and ask again.

    After ``retries`` failed retries: :class:`MalformedOutput`, carrying the usage."""
    runnable = _structured(model, schema, mode)
    if mode == "json_mode":  # the server is told "JSON" only: the schema goes in the prompt
        messages = [*messages, _schema_note(schema)]
    total: dict[str, int] = {}
    attempt_key = key
    error = ""
    for attempt in range(retries + 1):
        out = await _with_retries(lambda: _invoke(runnable, messages, attempt_key), attempt_key)
        raw, parsed, problem = out.get("raw"), out.get("parsed"), out.get("parsing_error")
        if mode != "function_calling" and raw is not None and not getattr(raw, "tool_calls", None):
            parsed, problem = _strict_json(_text(raw))  # the client's parser repairs broken JSON into {}
        _add(total, usage_of(raw), key)
        value = None
        if isinstance(parsed, dict):
            try:
                value = schema.model_validate(parsed)
            except ValidationError as exc:
                error = f"the JSON did not validate against the schema: {_validation_error(exc)}"
        elif parsed is not None:  # a client that validated already
            value = parsed
        else:
            error = f"the reply was not valid JSON: {_first_line(problem)}" if problem else (
                "there was no structured reply (the tool was not called, or the content was empty)"
            )
        if recorder:
            # Every attempt, valid or not, under the key replay asks for it by: a replay
            # takes the same turns (retry, give up) as the recorded session did.
            said = value.model_dump(mode="json") if value is not None else _said(raw, parsed)
            await asyncio.to_thread(recorder.add, attempt_key, said, usage_of(raw))
        if value is not None:
            return value, total
        messages = [*messages, HumanMessage(f"Your reply did not match the required schema: {error}\nReply again, fixing that.")]
        attempt_key = f"{key}#retry{attempt + 1}"
    raise MalformedOutput(f"{key}: the model's reply did not validate after {retries + 1} attempts: {error}", total)
