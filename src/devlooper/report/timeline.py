"""A run's timeline: its step events, in order, grouped into iterations.

Every checkpoint keeps the last step's event (``State.event``, see
:mod:`devlooper.events`), so the thread's checkpoints, walked from the newest
back through its parents, give every step of the run in order, each bounded:
the diagnosis of every iteration (the state keeps only the last), the failing
tests of every run (the state keeps an excerpt of older ones), the diffs, the
commands with their output, tokens and seconds. The walk follows one branch: a
fork's report tells the fork's story. A run whose checkpoints are gone (a graph
compiled without a checkpointer) is told from its state, with less detail.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a type only: the report page is rendered without LangGraph loaded
    from langgraph.checkpoint.base import BaseCheckpointSaver

from .. import events as ev


async def branch_events(saver: BaseCheckpointSaver, thread_id: str) -> list[dict[str, Any]]:
    """The step events of the thread's newest branch, oldest first."""
    found = {}
    newest = None
    async for t in saver.alist({"configurable": {"thread_id": thread_id}}):
        if t.config["configurable"].get("checkpoint_ns"):
            continue  # a subgraph's checkpoints
        found[t.config["configurable"]["checkpoint_id"]] = t
        newest = newest or t  # listed newest first
    chain = []
    at = newest
    while at is not None:
        chain.append((at.checkpoint.get("channel_values") or {}).get("event"))
        parent = (at.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        at = found.get(parent)
    return dedupe(reversed(chain))


def dedupe(found: Iterable[dict | None]) -> list[dict[str, Any]]:
    """Events as they were written: a checkpoint after a step that wrote none
    (input, escalate) still holds the previous step's event."""
    out: list[dict[str, Any]] = []
    for event in found:
        if event and (not out or out[-1] != event):
            out.append(event)
    return out


def state_events(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The events a state alone can tell (no checkpoints): older runs are excerpts,
    and only the last diagnosis is kept."""
    out: list[dict[str, Any]] = []
    results = state.get("action_results") or []
    files = state.get("files") or {}
    planned = [f.get("path") for f in (state.get("project") or {}).get("files", [])]
    out.append({
        "node": "generate", "iteration": 0, "notes": (state.get("project") or {}).get("notes", ""),
        "files": [{"path": p, "lines": ev._lines(files.get(p))} for p in planned if p in files],
        "packages": list((state.get("project") or {}).get("packages") or []),
        "actions": ev._actions({"action_results": [r for r in results if r["iteration"] == 0]}),
    })
    plans = {p["iteration"]: p for p in state.get("plans") or []}
    runs = state.get("test_runs") or []
    for run in runs:
        it = run["iteration"]
        out.append({"node": "test", "iteration": it, "seconds": run["duration"], **ev._test({}, {"test_runs": [run]})})
        if it == runs[-1]["iteration"] and it in plans and state.get("diagnosis"):
            out.append({"node": "diagnose", "iteration": it, **ev._diagnose({}, {"diagnosis": state["diagnosis"]})})
        if it in plans:
            out.append({"node": "plan", "iteration": it, **ev._plan({}, {"plans": [plans[it]]})})
            edits = [e for e in state.get("edits") or [] if e["iteration"] == it]
            mine = [r for r in results if r["iteration"] == it and r["kind"] != "plan"]
            out.append({"node": "apply", "iteration": it, **ev._apply({}, {"edits": edits, "action_results": mine})})
    return out


def iterations(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events grouped by iteration: 0 is generation; iteration k holds test run k and
    the diagnosis, plan and edits that followed it (whose effect is run k+1)."""
    groups: dict[int, dict[str, Any]] = {}
    for e in found:
        node = e.get("node")
        if node == "finish":
            continue
        it = int(e.get("iteration") or 0)
        g = groups.setdefault(it, {"iteration": it, "seconds": {}, "usage": {}, "actions": [], "edits": []})
        g["seconds"][node] = round(g["seconds"].get(node, 0) + (e.get("seconds") or 0), 3)
        for name, value in (e.get("usage") or {}).items():
            g["usage"][name] = g["usage"].get(name, 0) + value
        if node == "generate":
            g["generation"] = {k: e.get(k) for k in ("notes", "files", "packages")}
            g["actions"] += e.get("actions") or []
        elif node == "test":
            g["test"] = {k: e.get(k) for k in ("exit_code", "timed_out", "passed", "failed", "duration", "failing", "tail")}
        elif node == "diagnose":
            g["diagnosis"] = e.get("diagnosis", "")
            if e.get("loop_warning"):
                g["loop_warning"] = e["loop_warning"]
        elif node == "plan":
            g["plan"] = {"summary": e.get("summary", ""), "actions": e.get("actions") or []}
            g["actions"] += e.get("refused") or []
        elif node == "apply":
            g["edits"] = e.get("edits") or []
            g["actions"] += e.get("actions") or []
    return [groups[k] for k in sorted(groups)]
