"""The history as the model sees it: a compact entry per iteration (always), a
plain loop warning naming the edits not to repeat (when ``loops.detect`` finds
one), and a human's guidance (after an interrupt); every part is bounded in size.
"""

from __future__ import annotations

from ..bounded import clip
from ..memory import count_lines
from ..state import ActionResult, Detection, FileEdit, State

HISTORY_BUDGET = 4_000  # characters of history shown to the model


def _diffstat(edit: FileEdit) -> str:
    # Edits checkpointed before the counts were kept count what their diff still shows.
    added, removed = (edit["added"], edit["removed"]) if "added" in edit else count_lines(edit["diff"])
    if edit["after"] is None:
        return f"deleted {edit['path']}"
    if edit["before"] is None:
        return f"created {edit['path']} (+{added})"
    return f"edited {edit['path']} (+{added} -{removed})"


def render_result(r: ActionResult) -> str:
    if r["ok"]:
        return f"{r['kind']} {r['target']}: ok"
    tail = r["output"].strip().splitlines()[-1:] or [""]
    if r["exit_code"] is None:  # nothing ran: the action was refused, or its file was not written
        return f"{r['kind']} {r['target'][:200]}: FAILED {tail[0][:600]}"
    return f"{r['kind']} {r['target']}: FAILED (exit {r['exit_code']}) {tail[0][:200]}"


def _same_as(state: State, run_iteration: int) -> str:
    """" (same failure as run k)" when this run's signature was seen before."""
    fps = {fp["iteration"]: fp for fp in state.get("fingerprints", [])}
    fp = fps.get(run_iteration)
    if fp is None or fp["exit_code"] == 0:
        return ""
    same = [i for i, other in sorted(fps.items()) if i < run_iteration and other["signature"] == fp["signature"]]
    return f" (same failure as run {same[-1]})" if same else ""


def render_history(state: State, budget: int = HISTORY_BUDGET) -> str:
    """What earlier iterations tried and what the next test run showed, newest first."""
    runs = {r["iteration"]: r for r in state.get("test_runs", [])}
    plans = {p["iteration"]: p for p in state.get("plans", [])}
    entries = []
    for it in sorted(plans, reverse=True):
        plan = plans[it]
        edits = [_diffstat(e) for e in state.get("edits", []) if e["iteration"] == it]
        # A fix that ran shows as its edit; one that was refused shows as the refusal.
        results = [
            render_result(r)
            for r in state.get("action_results", [])
            if r["iteration"] == it and (r["kind"] != "fix" or not r["ok"])
        ]
        after = runs.get(it + 1)
        outcome = (
            f"next test run: exit {after['exit_code']}, {after['passed']} passed, {after['failed']} failed"
            + _same_as(state, it + 1)
            if after
            else "not tested yet"
        )
        done = "; ".join(edits + results) or "nothing changed"
        entries.append(f"- iteration {it}: {plan['summary']} -> {done}; {outcome}")
    generation = [render_result(r) for r in state.get("action_results", []) if r["iteration"] == 0 and not r["ok"]]
    if generation:
        entries.append(f"- generation: {'; '.join(generation)}")
    return _bounded(entries, budget, "older iterations") or "(this is the first failure)"


def _bounded(entries: list[str], budget: int, what: str) -> str:
    text, used = [], 0
    for entry in entries:
        if used + len(entry) > budget:
            text.append(f"- ... {len(entries) - len(text)} {what} omitted")
            break
        text.append(entry)
        used += len(entry)
    return "\n".join(text)


# --- the ladder, as the model sees it -----------------------------------------
WARNING_BUDGET = 3_000  # characters of "do not repeat" edits shown with a loop warning
EDIT_EXCERPT = 400  # characters of one edit's diff shown in the warning
GUIDANCE_KEPT = 5  # a human's answers shown, newest first
GUIDANCE_EXCERPT = 2_000  # characters of one answer


def _involved(detection: Detection) -> set[int]:
    """Iterations whose edits and steps belong to the loop."""
    its = detection["iterations"]
    if detection["kind"] in ("repeat", "failed_retry"):
        return set(its)  # these name the iterations of the repeated plans
    return set(range(its[0], its[-1]))  # runs a..b: the iterations a..b-1 led from one to the next


def render_loop_warning(state: State, detections: list[Detection]) -> str:
    """Tell the model plainly that it is looping, and what must not be tried again."""
    if not detections:
        return ""
    lines = ["WARNING: you are going in circles. Loop detection found:"]
    lines += [f"- {d['detail']}" for d in detections]
    involved = set().union(*(_involved(d) for d in detections))
    edits = sorted((e for e in state.get("edits", []) if e["iteration"] in involved), key=lambda e: -e["iteration"])
    failed = [
        r for r in state.get("action_results", [])
        if r["iteration"] in involved and r["kind"] in ("install", "command") and not r["ok"]
    ]
    avoid = [f"- iteration {e['iteration']}: {_diffstat(e)}\n{clip(e['diff'], EDIT_EXCERPT)[0]}" for e in edits]
    avoid += [f"- iteration {r['iteration']}: {r['kind']} `{r['target']}` (failed)" for r in failed]
    if avoid:
        lines.append("Do not repeat these changes; they were tried and did not fix the failure:")
        lines.append(_bounded(avoid, WARNING_BUDGET, "more changes"))
    lines.append(
        "Take a different approach: question the earlier diagnosis, reread the failing test and "
        "the error, consider another file or a different design, and do not undo and redo the same edit."
    )
    return "\n".join(lines)


def render_guidance(state: State) -> str:
    """What people said at pauses (a loop, a plan, a command), newest first."""
    said = [(e["iteration"], "at a loop", e["guidance"]) for e in state.get("loop_events", [])
            if e["rung"] == "asked" and e.get("guidance")]
    said += [(d["iteration"], _said_at(d), d["guidance"])
             for d in state.get("decisions", []) if d.get("by") == "person" and d.get("guidance")]
    if not said:
        return ""
    said.sort(key=lambda s: s[0])  # stable: within an iteration, the order they were said
    lines = ["A human gave this guidance (newest first); follow it:"]
    lines += [f"- (iteration {it}, {at}) {clip(text, GUIDANCE_EXCERPT)[0]}" for it, at, text in reversed(said[-GUIDANCE_KEPT:])]
    return "\n".join(lines)


def _said_at(decision: dict) -> str:
    if decision["moment"] == "command":
        return f"{decision['verdict']} the command `{clip(decision['subject'], 200)[0]}`"
    return f"{decision['verdict']} the generation plan"


def render_improve(state: State) -> str:
    """Improve mode, with the project's tests green: the request still has to be carried out."""
    runs = state.get("test_runs") or []
    if not state.get("improve") or not runs or runs[-1]["exit_code"] != 0:
        return ""
    return (
        "The project's tests pass, and the request above is not carried out yet: diagnose and plan the "
        "changes it needs (the code and tests for it), keeping the existing tests passing. If the request "
        "only asks for passing tests, plan no actions."
    )


def render_notes(state: State, detections: list[Detection], regression: str | None) -> str:
    """Everything loop memory adds to a diagnose or plan prompt (empty when nothing is wrong)."""
    parts = [p for p in (render_improve(state), regression, render_loop_warning(state, detections), render_guidance(state)) if p]
    return ("\n\n".join(parts) + "\n\n") if parts else ""
