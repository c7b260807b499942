"""diagnose: a free-text diagnosis of the last failing run (a separate step
from planning, which the original devlooper found improves the plans)."""

from __future__ import annotations

from langgraph.runtime import Runtime

from .. import prompts
from ..context import Context
from ..loops import detect, events_at, regression
from ..prompts.history import render_notes
from ..models import ask_text
from ..state import LoopEvent, State
from .common import build_prompt, context_of, model_of, ranker_of, template_of, timed


@timed("diagnose")
async def diagnose(state: State, runtime: Runtime[Context]) -> dict:
    ctx = context_of(runtime)
    model, recorder = model_of(ctx)
    iteration = state["iteration"]
    detections = detect(state.get("fingerprints", []), ctx.loop_window)
    notes = render_notes(state, detections, regression(state))
    messages = await build_prompt(
        ranker_of(ctx), prompts.diagnose, state, template_of(state, ctx), ctx.output_limit, notes, ctx.max_prompt_tokens
    )
    text, usage = await ask_text(model, messages, key=f"diagnose:{iteration}", recorder=recorder)
    update: dict = {"diagnosis": text.strip(), "usage": usage}
    if detections and not events_at(state, iteration):
        # Rung 2 of the ladder: the model is told (here and in plan) that it is looping.
        update["loop_events"] = [LoopEvent(iteration=iteration, rung="warned", detections=detections, guidance=None)]
    return update
