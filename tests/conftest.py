"""Shared fixtures: an isolated cache, no host keys, and a scripted-model runner."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from devlooper import Context, ReplayChatModel, builder
from devlooper.sandboxes.pool import release_all

SECRETS = ("OPENAI_API_KEY", "E2B_API_KEY", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "DEVLOOPER_MODEL")


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    # One environment cache per test session: venvs are built once and reused.
    os.environ["DEVLOOPER_CACHE_DIR"] = os.environ.get("DEVLOOPER_TEST_CACHE") or str(
        tmp_path_factory.mktemp("devlooper-cache")
    )
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("data"))


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)


async def run_scripted(
    replies: dict[str, Any], prompt: str = "a tiny library", *, template: str | None = None, **context: Any
) -> dict[str, Any]:
    """Run the whole graph with a scripted model and the real local sandbox."""
    model = ReplayChatModel.from_replies(replies)
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    payload = {"prompt": prompt, **({"template": template} if template else {})}
    try:
        await graph.ainvoke(payload, config, context=Context(chat_model=model, **context))
    finally:
        await release_all()
    return (await graph.aget_state(config)).values


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"
