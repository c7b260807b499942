"""What a run tells whoever follows it: step events and custom progress events.

Two kinds of event reach a watcher, locally (``graph.astream``) and over a
LangGraph server (``client.runs.stream``) alike:

- **the step event**, in every node's update under the ``event`` key: what the
  step just did, small and bounded (the diagnosis, the plan, a test summary with
  the failing names, the files written, the commands run with the tail of a
  failure's output). ``event`` is part of the output schema because a server
  streams ``updates`` filtered to the output keys: without it a client sees
  ``diagnose`` and ``plan`` as ``None``. Large values (whole files, whole test
  output) stay in the state, where ``get_state`` reads them.
- **custom events** (``stream_mode="custom"``), sent while a step runs:
  ``step_start``, and ``model_start`` / ``model_end`` around every model call, so
  a live view can show what it is waiting for.

The CLI's live view, ``--json`` and a Studio user all read these same events.
"""

from __future__ import annotations

from typing import Any

from .bounded import clip

# Bounds of what one event carries: enough to read, never a blob.
DIAGNOSIS_CHARS = 4_000
DIFF_CHARS = 4_000
TAIL_CHARS = 1_200
FAILING_NAMES = 20
FAILURE_CHARS = 300


def emit(payload: dict[str, Any]) -> None:
    """Send a custom stream event; a no-op outside a running graph (a model called directly)."""
    try:
        from langgraph.config import get_stream_writer

        writer = get_stream_writer()
    except (RuntimeError, KeyError):
        return
    writer(payload)


def step_start(node: str, state: dict[str, Any]) -> None:
    emit({"event": "step_start", "node": node, "iteration": state.get("iteration", 0)})


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    """The end of an output, where a failure says what went wrong."""
    text = text.rstrip()
    return text if len(text) <= limit else "…" + text[-limit:]


def step_event(node: str, state: dict[str, Any], update: dict[str, Any], seconds: float) -> dict[str, Any]:
    """What ``node`` did, from the state it read and the update it returns."""
    describe = _DESCRIBE.get(node)
    body = describe(state, update) if describe else {}
    event = {"node": node, "iteration": update.get("iteration", state.get("iteration", 0)), "seconds": round(seconds, 3)}
    usage = update.get("usage") or {}
    if usage:
        event["usage"] = dict(usage)
    return {**event, **body}


def _actions(update: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in update.get("action_results") or []:
        item = {k: r[k] for k in ("kind", "target", "ok", "exit_code", "duration")}
        if not r["ok"] or r["kind"] != "install":  # a command's output is what it did
            item["output"] = tail(r.get("output") or "")
        out.append(item)
    return out


def _generate(state: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    files = update.get("files") or {}
    return {
        "notes": (update.get("project") or {}).get("notes", ""),
        "files": [{"path": p, "lines": _lines(c)} for p, c in sorted(files.items())],
        "packages": list((update.get("project") or {}).get("packages") or []),
        "actions": _actions(update),
    }


def _test(state: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    run = update["test_runs"][-1]
    summary = {k: run[k] for k in ("exit_code", "timed_out", "passed", "failed", "duration")}
    summary["failing"] = [
        {"name": f["name"], "message": clip(f["message"], FAILURE_CHARS)[0]} for f in run["failures"][:FAILING_NAMES]
    ]
    if run["exit_code"] != 0:
        summary["tail"] = tail(run["output"])
    return summary


def _diagnose(state: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"diagnosis": clip(update.get("diagnosis", ""), DIAGNOSIS_CHARS)[0]}
    loops = [d["detail"] for e in update.get("loop_events") or [] for d in e["detections"]]
    if loops:
        body["loop_warning"] = loops
    return body


def _plan(state: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    plan = (update.get("plans") or [{}])[-1]
    return {
        "summary": plan.get("summary", ""),
        "actions": [_action_line(a) for a in plan.get("actions", [])],
        "refused": _actions(update),
    }


def _action_line(action: dict[str, Any]) -> dict[str, Any]:
    what = action.get("path") or " ".join(action.get("packages") or []) or action.get("command") or ""
    return {"kind": action.get("kind", "?"), "target": what, "instructions": clip(action.get("instructions") or "", 300)[0]}


def _apply(state: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    edits = []
    for e in update.get("edits") or []:
        edits.append({
            "path": e["path"],
            "change": "deleted" if e["after"] is None else "created" if e["before"] is None else "edited",
            "added": e.get("added"),
            "removed": e.get("removed"),
            "diff": clip(e["diff"], DIFF_CHARS)[0],
        })
    changed = update.get("files") or {}
    return {
        "edits": edits,
        "lines": {p: _lines(c) for p, c in changed.items() if c is not None},
        "actions": _actions(update),
    }


def _finish(state: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    return {"status": update.get("status"), "reason": update.get("reason")}


def _lines(content: str | None) -> int:
    return 0 if not content else content.count("\n") + (not content.endswith("\n"))


_DESCRIBE = {"generate": _generate, "test": _test, "diagnose": _diagnose, "plan": _plan, "apply": _apply, "finish": _finish}
