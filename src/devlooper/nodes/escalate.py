"""escalate: the top of the ladder, reached when a warned model is still looping.

With ``interactive`` the graph pauses with ``interrupt()`` and asks a human for
guidance; the CLI collects it at the terminal, a server client sends it with
``Command(resume="...")``. The guidance is recorded and reaches the next
diagnosis and plan. Without ``interactive``, or when the human sends nothing
(or "stop"), the run ends with status ``stuck`` instead of burning the rest of
its budget.
"""

from __future__ import annotations

from typing import Literal

from langgraph.config import get_config
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from ..context import Context
from ..loops import detect, loop_reason
from ..sandboxes.pool import pause
from ..state import LoopEvent, State
from .common import context_of

STOP_WORDS = frozenset({"", "stop", "quit", "q", "abort", "give up"})


def question(state: State, reason: str) -> dict:
    """What a human sees when the graph pauses: the loop, and what to answer."""
    last = state["test_runs"][-1]
    return {
        "kind": "stuck",
        "question": "devlooper is stuck in a loop. What should it try instead? "
        "(an empty answer or 'stop' ends the run)",
        "reason": reason,
        "iteration": state["iteration"],
        "passed": last["passed"],
        "failed": last["failed"],
        "diagnosis": state.get("diagnosis", ""),
    }


def can_pause() -> bool:
    """An interrupt without a checkpointer ends the run with no way to resume it."""
    return get_config().get("configurable", {}).get(CONFIG_KEY_CHECKPOINTER) is not None


def _answer_text(answer: object) -> str:
    # A server client may resume with a plain string or {"guidance": "..."}.
    if isinstance(answer, dict):
        answer = answer.get("guidance", "")
    return str(answer or "").strip()


# Not @timed: its wall time is a human's thinking time, not the harness's.
async def escalate(state: State, runtime: Runtime[Context]) -> Command[Literal["diagnose", "finish"]]:
    ctx = context_of(runtime, state)
    iteration = state["iteration"]
    detections = detect(state.get("fingerprints", []), ctx.loop_window)
    reason = loop_reason(iteration, detections, state.get("loop_events", []))
    if ctx.interactive and not can_pause():
        reason += "; interactive mode needs a checkpointer to pause and resume, and this graph has none"
    elif ctx.interactive:
        # A pause may last days: let the sandbox go now (a remote one stays alive briefly,
        # for an answer that comes soon); the step after the answer reconnects to it or
        # rebuilds it from the state. Everything here is recomputed on resume (the node
        # reruns from the top).
        await pause(state["run_id"])
        guidance = _answer_text(interrupt(question(state, reason)))
        if guidance.lower() not in STOP_WORDS:
            event = LoopEvent(iteration=iteration, rung="asked", detections=detections, guidance=guidance)
            return Command(goto="diagnose", update={"loop_events": [event]})
    event = LoopEvent(iteration=iteration, rung="stopped", detections=detections, guidance=None)
    return Command(goto="finish", update={"loop_events": [event], "status": "stuck", "reason": reason})
