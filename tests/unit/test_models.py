import asyncio
import json
import random
import socket

import pytest
from langchain_core.messages import HumanMessage
from pytest_socket import SocketBlockedError

from devlooper.errors import CassetteError, ConfigError
from devlooper.models import (
    MalformedOutput,
    Recorder,
    ReplayChatModel,
    ask_structured,
    ask_text,
    load_chat_model,
)
from devlooper.schemas import DebugPlan

GOOD_PLAN = {"summary": "fix", "actions": [{"kind": "fix_file", "path": "a.py", "instructions": "x"}]}


async def test_replies_match_the_call_key_not_the_call_order():
    keys = [f"generate_file:mod{i}.py" for i in range(20)]
    model = ReplayChatModel.from_replies({k: f"content of {k}" for k in keys})
    shuffled = random.Random(4).sample(keys, len(keys))

    async def ask(key):
        await asyncio.sleep(random.random() / 100)
        return key, (await ask_text(model, [HumanMessage("write")], key=key))[0]

    for key, text in await asyncio.gather(*(ask(k) for k in shuffled)):
        assert text == f"content of {key}"


async def test_exact_keys_win_over_patterns():
    model = ReplayChatModel.from_replies({"diagnose:*": "generic", "diagnose:2": "specific"})
    assert (await ask_text(model, [HumanMessage("x")], key="diagnose:2"))[0] == "specific"
    assert (await ask_text(model, [HumanMessage("x")], key="diagnose:7"))[0] == "generic"


async def test_missing_reply_is_a_clear_error():
    model = ReplayChatModel.from_replies({"plan_project": "x"})
    with pytest.raises(CassetteError, match="no reply for call 'diagnose:1'"):
        await ask_text(model, [HumanMessage("x")], key="diagnose:1")


async def test_structured_replies_validate_into_the_schema():
    model = ReplayChatModel(entries=[{"key": "plan:1", "reply": GOOD_PLAN, "usage": {"input_tokens": 9, "output_tokens": 4}}])
    plan, usage = await ask_structured(model, [HumanMessage("plan")], DebugPlan, key="plan:1")
    assert isinstance(plan, DebugPlan) and plan.actions[0].path == "a.py"
    assert {k: usage[k] for k in ("input_tokens", "output_tokens", "calls")} == {"input_tokens": 9, "output_tokens": 4, "calls": 1}
    assert usage["plan.input_tokens"] == 9  # and per step


async def test_a_malformed_reply_is_retried_with_the_error_shown():
    seen = []

    def retry(messages):
        seen.append(messages[-1].content)
        return GOOD_PLAN

    bad = {"summary": "escape", "actions": [{"kind": "fix_file", "path": "../../etc/passwd"}]}
    model = ReplayChatModel.from_replies({"plan:1": bad, "plan:1#retry1": retry})
    plan, usage = await ask_structured(model, [HumanMessage("plan")], DebugPlan, key="plan:1")
    assert plan.actions[0].path == "a.py"
    assert "escapes the workspace" in seen[0]
    assert usage["calls"] == 2


async def test_a_reply_that_never_validates_raises_malformed_output():
    bad = {"summary": "nothing to do", "actions": []}
    model = ReplayChatModel.from_replies({"plan:1*": bad})
    with pytest.raises(MalformedOutput, match="plan:1"):
        await ask_structured(model, [HumanMessage("plan")], DebugPlan, key="plan:1")


async def test_recorded_session_replays_identically(tmp_path):
    source = ReplayChatModel.from_replies({"diagnose:1": "root cause", "plan:1": GOOD_PLAN})
    cassette = tmp_path / "c.json"
    recorder = Recorder(cassette, model="scripted")
    await ask_text(source, [HumanMessage("x")], key="diagnose:1", recorder=recorder)
    await ask_structured(source, [HumanMessage("y")], DebugPlan, key="plan:1", recorder=recorder)
    data = json.loads(cassette.read_text())
    assert [c["key"] for c in data["calls"]] == ["diagnose:1", "plan:1"]

    replay = load_chat_model(f"replay:{cassette}")
    assert (await ask_text(replay, [HumanMessage("x")], key="diagnose:1"))[0] == "root cause"
    plan, _ = await ask_structured(replay, [HumanMessage("y")], DebugPlan, key="plan:1")
    assert plan == DebugPlan.model_validate(GOOD_PLAN)


async def _record_then_replay(tmp_path, replies: dict):
    """Ask for a plan through the real Recorder, then from its cassette: both outcomes, and the keys."""
    cassette = tmp_path / "c.json"

    async def outcome(model, recorder=None):
        try:
            plan, usage = await ask_structured(model, [HumanMessage("y")], DebugPlan, key="plan:1", recorder=recorder)
            return plan, usage["calls"]
        except MalformedOutput as exc:
            return type(exc), str(exc)

    recorded = await outcome(ReplayChatModel.from_replies(replies), Recorder(cassette, model="scripted"))
    replayed = await outcome(load_chat_model(f"replay:{cassette}"))
    return recorded, replayed, [c["key"] for c in json.loads(cassette.read_text())["calls"]]


BAD_PLAN = {"summary": "escape", "actions": [{"kind": "fix_file", "path": "../../etc/passwd", "instructions": "x"}]}


@pytest.mark.parametrize(
    "first", [BAD_PLAN, "I would rather explain the fix in words."], ids=["invalid arguments", "no tool call"]
)
async def test_a_session_whose_reply_needed_a_retry_replays_to_the_same_plan(tmp_path, first):
    recorded, replayed, keys = await _record_then_replay(tmp_path, {"plan:1": first, "plan:1#retry1": GOOD_PLAN})
    assert recorded == (DebugPlan.model_validate(GOOD_PLAN), 2)
    assert replayed == recorded
    assert keys == ["plan:1", "plan:1#retry1"]


async def test_a_session_whose_replies_never_validated_replays_to_the_same_failure(tmp_path):
    recorded, replayed, keys = await _record_then_replay(tmp_path, {"plan:1*": BAD_PLAN})
    assert recorded[0] is MalformedOutput and "escapes the workspace" in recorded[1]
    assert replayed == recorded
    assert keys == ["plan:1", "plan:1#retry1", "plan:1#retry2"]  # at most two retries


def test_missing_openai_key_names_the_variable_and_the_alternatives():
    with pytest.raises(ConfigError) as err:
        load_chat_model("openai:gpt-5.1")
    message = str(err.value)
    assert "OPENAI_API_KEY" in message and "--base-url" in message and "replay:" in message


# langchain-openai probes socket options by creating (never connecting) a socket.
@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_an_openai_compatible_server_needs_no_key():
    model = load_chat_model("openai:llama3", base_url="http://127.0.0.1:11434/v1")
    assert type(model).__name__ == "ChatOpenAI"
    assert model.openai_api_base == "http://127.0.0.1:11434/v1"


@pytest.mark.parametrize("content", ["not json", '{"no": "calls"}'])
def test_a_broken_cassette_is_a_config_error(tmp_path, content):
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(ConfigError):
        load_chat_model(f"replay:{path}")
    with pytest.raises(ConfigError, match="not found"):
        load_chat_model(f"replay:{tmp_path / 'missing.json'}")


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_unit_tests_cannot_open_network_sockets():
    with pytest.raises(SocketBlockedError):
        socket.create_connection(("127.0.0.1", 9))


# --- the retry layer ---------------------------------------------------------------
class _Response:
    def __init__(self, status: int, headers: dict[str, str]):
        self.status_code, self.headers = status, headers


class _HTTPError(Exception):
    """Shaped like an SDK's status error: the response with its status and headers."""

    def __init__(self, status: int, retry_after: str | None = "0"):
        super().__init__(f"HTTP {status}")
        self.response = _Response(status, {"retry-after": retry_after} if retry_after is not None else {})


def _failing(errors: list[Exception], then: str = "fine"):
    calls = []

    def reply(messages):
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return then

    return reply, calls


async def test_transient_errors_are_retried_until_the_call_succeeds():
    reply, calls = _failing([_HTTPError(429), _HTTPError(503), _HTTPError(502)])
    model = ReplayChatModel.from_replies({"diagnose:1": reply})
    text, _ = await ask_text(model, [HumanMessage("x")], key="diagnose:1")
    assert text == "fine" and len(calls) == 4


async def test_a_server_that_keeps_failing_is_a_clean_error_after_the_retry_budget():
    from devlooper.budgets import MODEL_RETRIES
    from devlooper.errors import DevlooperError
    from devlooper.models import ModelUnavailable

    reply, calls = _failing([_HTTPError(500) for _ in range(20)])
    model = ReplayChatModel.from_replies({"diagnose:1": reply})
    with pytest.raises(ModelUnavailable, match="HTTP 500") as err:
        await ask_text(model, [HumanMessage("x")], key="diagnose:1")
    assert isinstance(err.value, DevlooperError) and len(calls) == MODEL_RETRIES + 1


async def test_a_wait_longer_than_the_budget_is_not_waited():
    from devlooper.models import ModelUnavailable

    reply, calls = _failing([_HTTPError(429, retry_after="3600")])
    model = ReplayChatModel.from_replies({"diagnose:1": reply})
    with pytest.raises(ModelUnavailable):
        await ask_text(model, [HumanMessage("x")], key="diagnose:1")
    assert len(calls) == 1


async def test_a_refused_request_is_not_retried_and_says_so():
    from devlooper.models import ModelRejected

    reply, calls = _failing([_HTTPError(400)])
    model = ReplayChatModel.from_replies({"plan:1": reply})
    with pytest.raises(ModelRejected, match="refused the request"):
        await ask_structured(model, [HumanMessage("x")], DebugPlan, key="plan:1")
    assert len(calls) == 1


def test_what_is_transient():
    import httpx

    from devlooper.models import _transient

    assert all(_transient(e) for e in (_HTTPError(429), _HTTPError(503), ConnectionResetError(), TimeoutError(),
                                       httpx.ConnectError("refused"), httpx.ReadTimeout("slow")))
    assert not any(_transient(e) for e in (_HTTPError(400), _HTTPError(401), ValueError("bad")))


def test_retry_after_is_read_in_seconds_or_as_a_date():
    import email.utils
    import time

    from devlooper.models import _retry_after

    assert _retry_after(_HTTPError(429, "7")) == 7.0
    assert _retry_after(_HTTPError(429, None)) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= _retry_after(_HTTPError(429, later)) <= 31


async def test_structured_usage_counts_every_attempt_even_when_none_validates():
    bad = {"summary": "nothing to do", "actions": []}
    model = ReplayChatModel(entries=[{"key": "plan:1*", "reply": bad, "usage": {"input_tokens": 10, "output_tokens": 2}}])
    with pytest.raises(MalformedOutput) as err:
        await ask_structured(model, [HumanMessage("plan")], DebugPlan, key="plan:1")
    assert err.value.usage["calls"] == 3 and err.value.usage["plan.input_tokens"] == 30


def test_usage_summary_and_cost(tmp_path):
    from devlooper.usage import cost_of, price_of, summary

    usage = {"input_tokens": 1_000_000, "output_tokens": 100_000, "calls": 4, "plan.calls": 1, "plan.input_tokens": 10}
    assert price_of("openai:gpt-4o-2024-08-06") == price_of("gpt-4o")  # a dated snapshot, its family's price
    assert cost_of(usage, "openai:gpt-4o") == pytest.approx(2.5 + 1.0)
    assert summary(usage, "openai:llama3")["cost_usd"] is None  # unknown price: no guess
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"llama3": {"input": 0, "output": 0}}))
    shown = summary(usage, "openai:llama3", str(table))
    assert shown["cost_usd"] == 0 and shown["total_tokens"] == 1_100_000 and shown["by_step"]["plan"]["calls"] == 1
