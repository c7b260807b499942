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
