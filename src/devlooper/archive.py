"""Past runs, read from the checkpoint database (SQLite or Postgres).

``list_runs`` finds every thread by its first checkpoint (the one its input
wrote, ``source="input"`` in the metadata, which both savers can filter on) and
reads its newest checkpoint for the status and the iteration count.
``rebuild_report`` writes ``report.json`` and ``report.html`` of any thread from
its checkpoints, a thread that crashed or still waits for an answer included.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from .context import UNRECORDED, Context
from .nodes.finish import build_report
from .output import write_report
from .report import branch_events, iterations, render_html, state_events
from .runner import CONTEXT_KEY, checkpoint_of, compile_graph, open_saver

FINISHED = frozenset({"passed", "gave_up", "stuck", "error"})
PROMPT_CHARS = 200  # of a prompt, in a listing


async def list_runs(db: str | Path | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Every run in the database, newest first: id, started, prompt, template, status, iterations."""
    async with open_saver(db) as saver:
        starts: dict[str, Any] = {}
        async for t in saver.alist(None, filter={"source": "input"}):
            if t.config["configurable"].get("checkpoint_ns"):
                continue
            tid = t.config["configurable"]["thread_id"]
            if tid not in starts or t.checkpoint["ts"] < starts[tid].checkpoint["ts"]:
                starts[tid] = t
        newest_first = sorted(starts.values(), key=lambda t: t.checkpoint["ts"], reverse=True)
        rows = []
        for start in newest_first[:limit] if limit else newest_first:
            tid = start.config["configurable"]["thread_id"]
            latest = await saver.aget_tuple({"configurable": {"thread_id": tid}})
            values = (latest.checkpoint.get("channel_values") if latest else None) or {}
            given = (start.checkpoint.get("channel_values") or {}).get("__start__") or {}
            prompt = values.get("prompt") or given.get("prompt") or ""
            status = values.get("status")
            rows.append({
                "thread_id": tid,
                "started": start.checkpoint["ts"],
                "prompt": prompt if len(prompt) <= PROMPT_CHARS else prompt[: PROMPT_CHARS - 1] + "…",
                "template": values.get("template") or given.get("template") or _recorded(start.metadata).get("template"),
                "status": status if status in FINISHED else "unfinished",
                "iterations": values.get("iteration", 0),
            })
    return rows


def _recorded(metadata: dict | None) -> dict[str, Any]:
    raw = (metadata or {}).get(CONTEXT_KEY)
    try:
        return json.loads(raw) if raw else {}
    except (TypeError, json.JSONDecodeError):
        return {}


def _context(recorded: dict[str, Any]) -> Context:
    """The run's settings as far as a report needs them (a chat model object is named, not needed)."""
    names = {f.name for f in fields(Context)} - UNRECORDED
    ctx = Context(**{k: v for k, v in recorded.items() if k in names and v is not None})
    if recorded.get("chat_model_class"):
        ctx.model = recorded["chat_model_class"]
    return ctx


async def rebuild_report(thread_id: str, *, db: str | Path | None = None, out: str | Path | None = None) -> Path:
    """Write the thread's ``report.json`` and ``report.html``; return the page's path.

    ``out`` defaults to the run's output's ``.devlooper`` folder when it has one,
    else ``./devlooper-report-THREAD``.
    """
    async with open_saver(db) as saver:
        snapshot = await checkpoint_of(compile_graph(saver), thread_id)
        steps = await branch_events(saver, thread_id)
    values = dict(snapshot.values or {})
    recorded = _recorded(snapshot.metadata)
    timeline = iterations(steps if any(e.get("node") == "test" for e in steps) else state_events(values))
    if values.get("status") in FINISHED and values.get("report"):
        report = {**values["report"], "timeline": timeline}  # the state's report has no timeline
    else:
        last = steps[-1]["node"] if steps else "none"
        reason = (
            f"the run did not finish: its last recorded step was {last} (iteration {values.get('iteration', 0)}); "
            f"it crashed, was stopped, or waits for an answer. Continue it with `devlooper resume {thread_id}`"
        )
        report = build_report(values, _context(recorded), "unfinished", reason, steps, thread_id=thread_id)
        report["timeline"] = timeline
    target = Path(out).expanduser() if out else _default_dir(recorded, thread_id)
    return await asyncio.to_thread(write_report, target, report, render_html)


def _default_dir(recorded: dict[str, Any], thread_id: str) -> Path:
    output = recorded.get("output_dir")
    if output and Path(output).is_dir():
        return Path(output) / ".devlooper"
    return Path.cwd() / f"devlooper-report-{thread_id[:12]}"
