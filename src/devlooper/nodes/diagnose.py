"""diagnose: a free-text diagnosis of the last failing run (a separate step
from planning, which the original devlooper found improves the plans)."""

from __future__ import annotations

from langgraph.runtime import Runtime

from .. import prompts
from ..context import Context
from ..models import ask_text
from ..state import State
from .common import context_of, model_of, template_of, timed


@timed("diagnose")
async def diagnose(state: State, runtime: Runtime[Context]) -> dict:
    ctx = context_of(runtime)
    model, recorder = model_of(ctx)
    messages = prompts.diagnose(state, template_of(state, ctx), ctx.output_limit)
    text, usage = await ask_text(model, messages, key=f"diagnose:{state['iteration']}", recorder=recorder)
    return {"diagnosis": text.strip(), "usage": usage}
