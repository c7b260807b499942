"""finish: decide the outcome, add the manifest, write the output and the report."""

from __future__ import annotations

import asyncio

from langgraph.config import get_config
from langgraph.runtime import Runtime

from ..context import Context
from ..manifest import build_manifest
from ..output import write_output
from ..sandboxes.pool import release
from ..state import State
from .common import context_of, sandbox_of, template_of, timed


def outcome(state: State, ctx: Context) -> tuple[str, str]:
    last = state["test_runs"][-1]
    if last["exit_code"] == 0:
        return "passed", f"tests pass after {state['iteration']} iteration(s)"
    return "gave_up", (
        f"tests still fail after {state['iteration']} iteration(s) "
        f"(--max-iterations {ctx.max_iterations}); last exit code {last['exit_code']}"
    )


def build_report(state: State, ctx: Context, status: str, reason: str) -> dict:
    thread_id = (get_config().get("configurable") or {}).get("thread_id")
    plans = {p["iteration"]: p for p in state.get("plans", [])}
    return {
        "status": status,
        "reason": reason,
        "iterations": state["iteration"],
        "thread_id": thread_id,
        "prompt": state["prompt"],
        "template": state.get("template"),
        "model": ctx.model if ctx.chat_model is None else type(ctx.chat_model).__name__,
        "sandbox": ctx.sandbox,
        "test_runs": [
            {k: r[k] for k in ("iteration", "exit_code", "timed_out", "passed", "failed", "duration")}
            for r in state.get("test_runs", [])
        ],
        "actions": [
            {
                "iteration": it,
                "summary": plans[it]["summary"] if it in plans else "generation",
                "results": [
                    {k: r[k] for k in ("kind", "target", "ok", "exit_code", "duration")}
                    for r in state.get("action_results", [])
                    if r["iteration"] == it
                ],
            }
            for it in sorted({0, *plans})
        ],
        "layers": state.get("layers", []),
        "edits": [{k: e[k] for k in ("iteration", "path", "before", "after")} for e in state.get("edits", [])],
        "usage": state.get("usage", {}),
        "timings": {node: round(seconds, 3) for node, seconds in state.get("timings", {}).items()},
        "files": sorted(state.get("files", {})),
    }


@timed("finish")
async def finish(state: State, runtime: Runtime[Context]) -> dict:
    ctx = context_of(runtime)
    status, reason = outcome(state, ctx)
    box = await sandbox_of(state, ctx)
    manifest = await build_manifest(box, template_of(state, ctx), state.get("files", {}))
    await release(state["run_id"])
    files = {**state.get("files", {}), **manifest}
    report = build_report({**state, "files": files}, ctx, status, reason)
    if ctx.output_dir:
        await asyncio.to_thread(write_output, ctx.output_dir, files, report)
    return {"status": status, "reason": reason, "files": manifest, "report": report}
