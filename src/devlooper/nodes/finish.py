"""finish: decide the outcome, add the manifest, write the output and the report."""

from __future__ import annotations

import asyncio

from langgraph.config import get_config
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.runtime import Runtime

from ..context import Context
from ..loops import restore_best
from ..manifest import build_manifest
from ..output import write_output
from ..report import README, branch_events, has_readme, iterations, project_readme, render_html, state_events
from ..sandboxes.pool import release
from ..state import State
from ..usage import budget_exceeded, summary
from .common import context_of, sandbox_of, sandbox_settings, template_of, timed


def outcome(state: State, ctx: Context) -> tuple[str, str]:
    last = state["test_runs"][-1]
    if last["exit_code"] == 0:
        return "passed", f"tests pass after {state['iteration']} iteration(s)"
    if state.get("status") == "stuck":  # set by escalate, with the loop named in the reason
        return "stuck", state["reason"]
    if state["iteration"] < ctx.max_iterations and (why := budget_exceeded(state.get("usage", {}), ctx)):
        return "budget", f"stopped after {state['iteration']} iteration(s): {why}; resume with a bigger budget"
    return "gave_up", (
        f"tests still fail after {state['iteration']} iteration(s) "
        f"(--max-iterations {ctx.max_iterations}); last exit code {last['exit_code']}"
    )


def build_report(
    state: State, ctx: Context, status: str, reason: str, steps: list[dict] | None = None, thread_id: str | None = None
) -> dict:
    """The report's data. ``steps`` are the run's step events (report.timeline); without
    them the iterations are told from the state alone."""
    if thread_id is None:
        thread_id = (get_config().get("configurable") or {}).get("thread_id")
    plans = {p["iteration"]: p for p in state.get("plans", [])}
    return {
        "status": status,
        "reason": reason,
        "iterations": state.get("iteration", 0),
        "thread_id": thread_id,
        "prompt": state.get("prompt", ""),
        "template": state.get("template"),
        "model": ctx.model if ctx.chat_model is None else type(ctx.chat_model).__name__,
        "sandbox": ctx.sandbox,
        "isolation": sandbox_settings(ctx)["isolation"],  # "none": the generated code ran unconfined
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
        # Without a command's `once`: a cache key, random, no part of what the run did.
        "layers": state.get("layers", []),
        "edits": [{k: e[k] for k in ("iteration", "path", "before", "after")} for e in state.get("edits", [])],
        "loop": {
            "events": state.get("loop_events", []),
            "fingerprints": [
                {k: v for k, v in fp.items() if k != "steps"} for fp in state.get("fingerprints", [])
            ],
            "best": {k: v for k, v in (state.get("best") or {}).items() if k not in ("files", "layers")} or None,
        },
        # What people decided at pauses, and what improve mode started from.
        "decisions": state.get("decisions", []),
        "improve": state.get("improve") or None,
        "usage": summary(state.get("usage", {}), ctx.model, ctx.prices),
        "timings": {node: round(seconds, 3) for node, seconds in state.get("timings", {}).items()},
        "files": sorted(state.get("files", {})),
        # Per iteration: the test summary with the failing tests, the diagnosis, the plan,
        # the diffs, the commands with their (bounded) output, tokens and seconds.
        "timeline": iterations(steps if steps else state_events(state)),
    }


@timed("finish")
async def finish(state: State, runtime: Runtime[Context]) -> dict:
    ctx = context_of(runtime)
    status, reason = outcome(state, ctx)
    kept = kept_state(state, ctx, status)
    box = await sandbox_of(kept, ctx)
    manifest = await build_manifest(box, template_of(state, ctx), kept.get("files", {}))
    files = {**kept.get("files", {}), **manifest}
    if not has_readme(files):  # the output stands alone for a person too
        notes = (state.get("project") or {}).get("notes", "")
        # Off the event loop: the README's template is read from the package on first use.
        files[README] = await asyncio.to_thread(
            project_readme, state["prompt"], template_of(state, ctx), notes, status, reason
        )
    report = build_report({**state, "files": files}, ctx, status, reason, await run_steps(state))
    if kept is not state:
        best = state["best"]
        # The output holds the best iteration, not the last: say so, and that its tests fail.
        report["output"] = {
            "iteration": best["iteration"], "passed": best["passed"], "failed": best["failed"], "tests_pass": False,
            "note": f"--keep-best: files and environment of run {best['iteration']}, the one with the most "
            f"passing tests; its tests fail",
        }
        reason += f"; kept run {best['iteration']} ({best['passed']} passed, {best['failed']} failed)"
        report["reason"] = reason
    else:
        report["output"] = {"iteration": state["iteration"], "tests_pass": status == "passed"}
    # The sandbox is no longer needed: it is removed while the output is written.
    writing = [asyncio.to_thread(write_output, ctx.output_dir, files, report, render_html)] if ctx.output_dir else []
    for outcome_ in await asyncio.gather(release(state["run_id"]), *writing, return_exceptions=True):
        if isinstance(outcome_, BaseException):
            raise outcome_
    # The state's files end as what was written (a server user gets them back
    # without an output directory): the manifest, and with --keep-best the best files.
    # Only what changed is written: the checkpoint stores this step's writes.
    current = state.get("files", {})
    gone = {path: None for path in current if path not in files}
    changed = {path: text for path, text in files.items() if current.get(path) != text}
    # The state's report leaves out the timeline (tens of KiB per iteration, and the last
    # checkpoint holds the whole state): it is in report.json, and `devlooper report`
    # rebuilds it from the checkpoints' step events.
    kept_report = {k: v for k, v in report.items() if k != "timeline"}
    return {"status": status, "reason": reason, "files": {**gone, **changed}, "report": kept_report}

async def run_steps(state: State) -> list[dict]:
    """This run's step events, from its checkpoints (report.timeline); empty without a
    checkpointer, or for a run whose older checkpoints predate step events."""
    configurable = get_config().get("configurable") or {}
    saver = configurable.get(CONFIG_KEY_CHECKPOINTER)
    if saver is None or not configurable.get("thread_id"):
        return []
    steps = await branch_events(saver, configurable["thread_id"])
    if state.get("event") and (not steps or steps[-1] != state["event"]):
        steps.append(state["event"])  # the last step's checkpoint may still be on its way (async durability)
    return steps if any(e.get("node") == "test" for e in steps) else []


def kept_state(state: State, ctx: Context, status: str) -> State:
    """The state whose files and environment are written: the last, or with
    ``keep_best`` after a red ending, the best run so far (its sandbox is rebuilt
    from the recorded layers, so the manifest matches what it had installed)."""
    best = state.get("best")
    if status == "passed" or not ctx.keep_best or not best or best["iteration"] == state["iteration"]:
        return state
    files, layers = restore_best(state)
    return {**state, "files": files, "layers": layers}
