"""What a tracer (LangSmith, or any callback handler) sees of a run: a readable tree.

No network: a callback handler records every run start, as LangSmith's tracer
would receive it, and the tree is checked by parent ids.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from devlooper import Context, ReplayChatModel
from devlooper.runner import run
from tests.integration.test_loop import BAD, FIX, GOOD, replies


class Runs(BaseCallbackHandler):
    def __init__(self) -> None:
        self.runs: dict[UUID, dict[str, Any]] = {}

    def _start(self, kind: str, run_id: UUID, parent_run_id: UUID | None, kwargs: dict, name: str | None) -> None:
        self.runs[run_id] = {
            "kind": kind,
            "name": name or kwargs.get("name"),
            "parent": parent_run_id,
            "tags": kwargs.get("tags") or [],
            "metadata": kwargs.get("metadata") or {},
        }

    def on_chain_start(self, serialized, inputs, *, run_id, parent_run_id=None, **kwargs):
        self._start("chain", run_id, parent_run_id, kwargs, kwargs.get("name"))

    def on_chat_model_start(self, serialized, messages, *, run_id, parent_run_id=None, **kwargs):
        self._start("llm", run_id, parent_run_id, kwargs, kwargs.get("name"))

    def ancestors(self, run_id: UUID) -> list[dict[str, Any]]:
        chain, parent = [], self.runs[run_id]["parent"]
        while parent is not None and parent in self.runs:
            chain.append(self.runs[parent])
            parent = self.runs[parent]["parent"]
        return chain


async def test_nodes_and_model_calls_carry_names_tags_and_metadata(tmp_path):
    runs = Runs()
    model = ReplayChatModel.from_replies(
        replies(BAD, **{"diagnose:1": "add subtracts", "plan:1": FIX, "fix_file:1:adder.py": GOOD}),
    )
    final = await run(
        "an adder", Context(chat_model=model), thread_id="traced", db=tmp_path / "db.sqlite", callbacks=[runs]
    )
    assert final["status"] == "passed"

    roots = [r for r in runs.runs.values() if r["parent"] is None]
    assert [r["name"] for r in roots] == ["devlooper"]
    assert "devlooper" in roots[0]["tags"] and roots[0]["metadata"]["thread_id"] == "traced"

    steps = [r for r in runs.runs.values() if r["kind"] == "chain" and r["parent"] in runs.runs
             and runs.runs[r["parent"]]["name"] == "devlooper" and not r["name"].startswith("route")
             and r["name"] != "__start__"]  # LangGraph's own step: the graph branches at its start
    assert [s["name"] for s in steps] == ["design", "generate", "test", "diagnose", "plan", "apply", "test", "finish"]
    for step in steps:
        assert step["metadata"]["langgraph_node"] == step["name"]
        assert "devlooper" in step["tags"] and "sandbox:local" in step["tags"]

    calls = {run_id: r for run_id, r in runs.runs.items() if r["kind"] == "llm"}
    keys = sorted(r["metadata"]["devlooper_call"] for r in calls.values())
    assert keys == ["diagnose:1", "fix_file:1:adder.py", "generate_file:adder.py",
                    "generate_file:tests/test_adder.py", "plan:1", "plan_project"]
    expected_node = {"plan_project": "design", "generate_file": "generate", "diagnose": "diagnose",
                     "plan": "plan", "fix_file": "apply"}
    for run_id, call in calls.items():
        step = call["metadata"]["devlooper_call"].split(":", 1)[0]
        names = [a["name"] for a in runs.ancestors(run_id)]
        # A text call is itself named devlooper.<step>; a structured call is named at
        # its chain (model, then parser), which holds the model run.
        chain = [call["name"], *names]
        assert f"devlooper.{step}" in chain
        assert chain.index(f"devlooper.{step}") < chain.index(expected_node[step])
        assert {"devlooper", step} <= set(call["tags"])
        # Every model call hangs under the node that made it, under the run's root.
        assert expected_node[step] in names and names[-1] == "devlooper"
        assert call["metadata"]["langgraph_node"] == expected_node[step]


def test_handler_ids_are_uuids():
    """Guard for the helper itself: ancestors() stops at the root."""
    runs = Runs()
    root, child = uuid.uuid4(), uuid.uuid4()
    runs._start("chain", root, None, {}, "devlooper")
    runs._start("chain", child, root, {}, "test")
    assert [a["name"] for a in runs.ancestors(child)] == ["devlooper"]
