"""plan: turn the diagnosis into a validated DebugPlan, at most ``MAX_PLAN_ACTIONS`` actions of it."""

from __future__ import annotations

from langgraph.runtime import Runtime

from .. import prompts
from ..context import Context
from ..loops import detect, regression
from ..prompts.history import render_notes, render_result
from ..models import MalformedOutput, ask_structured
from ..plancheck import cap_actions
from ..schemas import DebugPlan
from ..state import ActionResult, State
from .common import context_of, model_of, template_of, timed


@timed("plan")
async def plan(state: State, runtime: Runtime[Context]) -> dict:
    ctx = context_of(runtime)
    iteration = state["iteration"]
    model, recorder = model_of(ctx)
    # Environment steps of the previous iteration (or of generation) that failed.
    notes = "\n".join(
        render_result(r) for r in state.get("action_results", []) if r["iteration"] == iteration - 1 and not r["ok"]
    )
    # The same loop memory diagnose saw: a regression, a loop warning, a human's guidance.
    memory = render_notes(state, detect(state.get("fingerprints", []), ctx.loop_window), regression(state))
    messages = prompts.plan_fix(state, template_of(state, ctx), notes, memory, ctx.max_prompt_tokens)
    try:
        debug_plan, usage = await ask_structured(
            model, messages, DebugPlan, key=f"plan:{iteration}", recorder=recorder, mode=ctx.structured_output
        )
    except MalformedOutput as exc:
        # A failed plan, not a failed run: nothing is applied, the error is fed back to the
        # next diagnosis, and the loop goes on (or stops) by its own rules.
        failure = ActionResult(
            iteration=iteration, kind="plan", target="debug plan", ok=False, exit_code=None,
            output=str(exc)[-2000:], duration=0.0,
        )
        empty = {"iteration": iteration, "summary": "the model's plan did not validate", "actions": []}
        return {"plans": [empty], "action_results": [failure], "usage": exc.usage}
    # Only what may run is stored (every checkpoint holds every plan); the rest is
    # refused here, in one result the next diagnosis sees.
    capped = cap_actions(debug_plan.actions, iteration)
    stored = {"iteration": iteration, **debug_plan.model_copy(update={"actions": capped.actions}).model_dump(mode="json")}
    return {"plans": [stored], "usage": usage, "action_results": capped.refused}
