"""Past runs, read from the checkpoint database (SQLite or Postgres).

``list_runs`` finds every thread by its first checkpoint (the one its input
wrote, ``source="input"`` in the metadata) and reads its newest checkpoint for
the status and the iteration count. ``history`` lists a thread's checkpoints.
Both read the rows through ``checkpoint_db``, without the graph or a LangGraph
saver, so ``devlooper runs`` and ``devlooper history`` start at once.
``rebuild_report`` writes ``report.json`` and ``report.html`` of any thread from
its checkpoints, a thread that crashed or still waits for an answer included.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from . import checkpoint_db
from .checkpoint_db import CONTEXT_KEY, Saved, Snapshot
from .context import UNRECORDED, Context
from .errors import ConfigError

FINISHED = frozenset({"passed", "gave_up", "stuck", "error"})
PROMPT_CHARS = 200  # of a prompt, in a listing


async def list_runs(db: str | Path | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Every run in the database, newest first: id, started, prompt, template, status, iterations."""
    starts: dict[str, Saved] = {}
    for s in await checkpoint_db.starts(db):
        if s.thread_id not in starts or s.checkpoint["ts"] < starts[s.thread_id].checkpoint["ts"]:
            starts[s.thread_id] = s
    newest_first = sorted(starts.values(), key=lambda s: s.checkpoint["ts"], reverse=True)
    rows = []
    for start in newest_first[:limit] if limit else newest_first:
        latest = await checkpoint_db.latest(db, start.thread_id)
        values = latest.values if latest else {}
        given = start.values.get("__start__") or {}
        prompt = values.get("prompt") or given.get("prompt") or ""
        status = values.get("status")
        rows.append({
            "thread_id": start.thread_id,
            "started": start.checkpoint["ts"],
            "prompt": prompt if len(prompt) <= PROMPT_CHARS else prompt[: PROMPT_CHARS - 1] + "…",
            "template": values.get("template") or given.get("template") or _recorded(start.metadata).get("template"),
            "status": status if status in FINISHED else "unfinished",
            "iterations": values.get("iteration", 0),
        })
    return rows


async def history(thread_id: str, *, db: str | Path | None = None) -> list[dict[str, Any]]:
    """The thread's checkpoints, oldest first, one dict each.

    ``node`` is the step that wrote the checkpoint (``input`` for the first),
    ``next`` the step that runs from it; ``exit_code`` and ``failing`` describe
    the last test run the state holds at that point.
    """
    saved = await checkpoint_db.thread(db, thread_id)
    if not saved:
        raise ConfigError(f"no run with thread id {thread_id} in this checkpoint database (see --db)")
    by_id = {s.checkpoint_id: s for s in saved}
    last_runs: dict[str, dict | None] = {}
    rows = []
    for s in saved:  # oldest first: a parent comes before its children
        parent = by_id.get(s.parent_id) if s.parent_id else None
        last = last_runs[s.checkpoint_id] = _last_test_run(s, parent, last_runs)
        rows.append(
            {
                "checkpoint_id": s.checkpoint_id,
                "parent_id": s.parent_id,
                "step": s.metadata.get("step"),
                "source": s.metadata.get("source"),
                "node": _writer(s, parent),
                "next": ",".join(s.next),
                "iteration": s.values.get("iteration", 0),
                "exit_code": last["exit_code"] if last else None,
                "failing": last["failed"] if last else None,
                "status": s.values.get("status"),
                "created_at": s.checkpoint["ts"],
            }
        )
    return rows


def _last_test_run(saved: Saved, parent: Saved | None, known: dict[str, dict | None]) -> dict | None:
    """The newest test run the state holds at ``saved``.

    ``test_runs`` is folded (state.folded): a checkpoint holds its whole value only
    now and then (a ``Snapshot``); otherwise the value is the parent's with the
    writes made from the parent folded in. Folding keeps every run and only
    appends, so the newest run is the last one written.
    """
    value = saved.values.get("test_runs")
    if isinstance(value, Snapshot):
        value = value.value
    if isinstance(value, list):
        return value[-1] if value else None
    last = known.get(parent.checkpoint_id) if parent else None
    for _, channel, written in parent.writes if parent else ():
        if channel == "test_runs" and written:
            last = written[-1]
    return last


def _writer(saved: Saved, parent: Saved | None) -> str:
    """The step that wrote a checkpoint: the parent's next step, or how the branch began."""
    source = saved.metadata.get("source")
    if source in ("input", "fork", "update"):
        return source
    return ",".join(parent.next) if parent is not None and parent.next else source or "?"


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
    # The report needs the state as the graph folds it: the graph is imported here
    # only, so listing runs and checkpoints never imports it.
    import asyncio  # noqa: PLC0415

    from .nodes.finish import build_report  # noqa: PLC0415
    from .output import write_report  # noqa: PLC0415
    from .report import branch_events, iterations, render_html, state_events  # noqa: PLC0415
    from .runner import checkpoint_of, compile_graph, open_saver  # noqa: PLC0415

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
