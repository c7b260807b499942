"""review_plan and review_commands: the pauses where a person approves what the model
wants to do before it happens (``interrupt()``; the CLI asks at the terminal, a server
client answers with ``Command(resume=...)``).

Each node only pauses; what it decides is recorded in ``State.decisions`` and
seen by the next model call (guidance) and by apply (refused commands). A node
that pauses runs again from its top on resume, so nothing here calls a model or
changes a sandbox. Not @timed: their wall time is a person's thinking time.
"""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from ..approval import commands_to_ask, decision, read_command_answer, read_plan_answer
from ..context import Context
from ..sandboxes.pool import release
from ..state import State
from .common import context_of
from .escalate import can_pause


def plan_question(state: State, problem: str | None = None) -> dict:
    project = state.get("project") or {}
    return {
        "kind": "plan",
        "question": "Approve this plan? An empty answer or 'yes' approves it; any other text rejects it "
        "and is the guidance for a new plan; {'action': 'edit', 'plan': {...}} replaces it.",
        "plan": project,
        "problem": problem,
    }


def command_question(state: State, command: str) -> dict:
    plan = (state.get("plans") or [{}])[-1]
    return {
        "kind": "command",
        "question": "Run this command in the sandbox? 'yes' (or empty) runs it; 'no' refuses it; any "
        "other text refuses it and tells the model why.",
        "command": command,
        "iteration": state.get("iteration", 0),
        "summary": plan.get("summary", ""),
        "diagnosis": state.get("diagnosis", ""),
    }


async def review_plan(state: State, runtime: Runtime[Context]) -> Command[Literal["generate", "design"]]:
    ctx = context_of(runtime, state)
    if not (ctx.interactive and can_pause()):
        return Command(goto="generate")
    if state.get("run_id"):
        await release(state["run_id"])  # a pause may last days
    answer = read_plan_answer(interrupt(plan_question(state)))
    while answer.problem:  # an edited plan that does not validate: say why and ask again
        answer = read_plan_answer(interrupt(plan_question(state, answer.problem)))
    summary = ", ".join(f["path"] for f in (state.get("project") or {}).get("files", []))[:500]
    update: dict = {"decisions": [decision(state, "plan", summary or "the generation plan", answer)]}
    if answer.verdict == "rejected":
        return Command(goto="design", update=update)
    if answer.plan is not None:
        update["project"] = answer.plan
    return Command(goto="generate", update=update)


async def review_commands(state: State, runtime: Runtime[Context]) -> dict:
    ctx = context_of(runtime, state)
    asked = commands_to_ask(state, ctx)
    if not asked or not can_pause():
        return {}  # apply refuses what no one approved (approval.command_refusals)
    if state.get("run_id"):
        await release(state["run_id"])
    decisions = []
    for command in dict.fromkeys(asked):  # the same command twice is asked once
        answer = read_command_answer(interrupt(command_question(state, command)))
        decisions.append(decision(state, "command", command, answer))
    return {"decisions": decisions}
