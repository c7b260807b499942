"""The runner's bookkeeping: recorded settings, database choice, history errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from devlooper import Context, ReplayChatModel, cli
from devlooper.errors import ConfigError
from devlooper.models import Recorder, continue_recording
from devlooper.runner import CONTEXT_KEY, history, is_postgres, open_saver, record_context, recorded_context


def snapshot(ctx: Context | None) -> SimpleNamespace:
    return SimpleNamespace(metadata={CONTEXT_KEY: record_context(ctx)} if ctx else {})


def test_recorded_settings_come_back_and_overrides_win(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ctx = Context(model="replay:c.json", sandbox="local", max_iterations=7, test_timeout=12.5, output_dir="out")
    data = json.loads(record_context(ctx))
    assert data["output_dir"] == str(tmp_path / "out")  # absolute: a resume may run elsewhere
    assert "chat_model" not in data

    back = recorded_context(snapshot(ctx))
    assert (back.model, back.max_iterations, back.test_timeout) == ("replay:c.json", 7, 12.5)
    assert back.output_dir == str(tmp_path / "out")

    changed = recorded_context(snapshot(ctx), max_iterations=20, output_dir=None, model=None)
    assert changed.max_iterations == 20 and changed.model == "replay:c.json"  # None leaves a setting alone


def test_a_chat_model_object_is_not_recorded_and_must_be_given_again():
    model = ReplayChatModel.from_replies({})
    ctx = Context(chat_model=model, max_iterations=3)
    data = json.loads(record_context(ctx))
    assert "chat_model" not in data and data["model"] is None and data["chat_model_class"] == "ReplayChatModel"
    back = recorded_context(snapshot(ctx), chat_model=model)
    assert back.chat_model is model and back.max_iterations == 3
    assert recorded_context(snapshot(ctx), model="replay:c.json").model == "replay:c.json"
    # Not the default model in its place: that would continue the run with another model.
    with pytest.raises(ConfigError, match="used a chat model object \\(ReplayChatModel\\)"):
        recorded_context(snapshot(ctx))


def test_a_checkpoint_without_settings_gets_the_defaults():
    assert recorded_context(snapshot(None)) == Context()


def test_database_choice():
    assert is_postgres("postgresql://u@h/db") and is_postgres("postgres://u@h/db")
    assert not is_postgres("runs.sqlite") and not is_postgres(None) and not is_postgres(Path("postgresql:"))


async def test_a_directory_is_not_a_database(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        async with open_saver(tmp_path):
            pass


async def test_history_of_an_unknown_thread_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no run with thread id nope"):
        await history("nope", db=tmp_path / "db.sqlite")


def test_cli_history_and_resume_of_an_unknown_thread_exit_2(tmp_path, capsys):
    assert cli.main(["history", "nope", "--db", str(tmp_path / "db.sqlite")]) == 2
    assert cli.main(["resume", "nope", "--db", str(tmp_path / "db.sqlite")]) == 2
    assert capsys.readouterr().err.count("no run with thread id nope") == 2


def test_a_resumed_recording_keeps_what_was_recorded_before(tmp_path):
    path = tmp_path / "rec.json"
    first = Recorder(path, "openai:x")
    first.add("plan_project", {"files": []}, {"input_tokens": 1})
    recorder = continue_recording(str(path), "openai:x")
    recorder.add("diagnose:1", "text", {})
    keys = [c["key"] for c in json.loads(path.read_text())["calls"]]
    assert keys == ["plan_project", "diagnose:1"]


async def test_a_new_prompt_on_a_used_thread_is_refused(tmp_path):
    from langgraph.checkpoint.base import empty_checkpoint

    from devlooper.runner import run

    db = tmp_path / "db.sqlite"
    async with open_saver(db) as saver:  # a thread that holds a checkpoint
        config = {"configurable": {"thread_id": "used", "checkpoint_ns": ""}}
        await saver.aput(config, empty_checkpoint(), {"source": "input", "step": -1}, {})
    with pytest.raises(ConfigError, match="thread used already holds a run"):
        await run("another prompt", Context(model="replay:none.json"), thread_id="used", db=db)


def test_recorded_settings_beat_the_environment_even_when_empty(monkeypatch):
    # Recorded at the start: no output directory, no cassette, no base URL, 7 iterations.
    ctx = Context(model="replay:c.json", max_iterations=7)
    monkeypatch.setenv("DEVLOOPER_MAX_ITERATIONS", "2")
    monkeypatch.setenv("DEVLOOPER_OUTPUT_DIR", "/tmp/elsewhere")
    monkeypatch.setenv("DEVLOOPER_RECORD", "/tmp/elsewhere.json")
    monkeypatch.setenv("DEVLOOPER_BASE_URL", "http://127.0.0.1:9/v1")
    back = recorded_context(snapshot(ctx))
    assert back.max_iterations == 7
    assert (back.output_dir, back.record, back.base_url) == (None, None, None)
    assert recorded_context(snapshot(ctx), output_dir="/tmp/given").output_dir == "/tmp/given"


def test_the_environment_fills_a_setting_the_checkpoint_never_recorded(monkeypatch):
    # A checkpoint written before a setting existed: the variable fills it.
    raw = json.loads(record_context(Context(model="replay:c.json")))
    del raw["loop_window"]
    monkeypatch.setenv("DEVLOOPER_LOOP_WINDOW", "5")
    back = recorded_context(SimpleNamespace(metadata={CONTEXT_KEY: json.dumps(raw)}))
    assert back.loop_window == 5 and back.model == "replay:c.json"


def test_the_isolation_is_recorded_with_the_settings():
    assert json.loads(record_context(Context(isolation="none")))["isolation"] == "none"
    assert recorded_context(snapshot(Context(isolation="none"))).isolation == "none"
