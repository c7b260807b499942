"""The devlooper graph: design -> [review_plan] -> generate -> test -> (finish | diagnose ->
plan -> [review_commands] -> apply -> test), with escalate (ask a human, or stop as
stuck) when a warned model keeps looping. Improve mode starts at load (an existing
project) instead of design. The bracketed pauses are visited only when a person
is asked (``interactive``, the command policy).

``graph`` is compiled without a checkpointer: the LangGraph server brings its
own persistence. The CLI and embedders compile ``builder`` with their saver.
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from .context import Context
from .loops import still_stuck
from .approval import commands_to_ask
from .nodes import apply, design, diagnose, escalate, finish, generate, load, plan, review_commands, review_plan, test
from .nodes.common import context_of
from .state import InputState, OutputState, State
from .usage import budget_exceeded


def route_after_test(state: State, runtime: Runtime[Context]) -> Literal["finish", "diagnose", "escalate"]:
    """Green goes to finish; red goes to diagnose while the iteration and token budgets last,
    or to escalate when the model is still looping after a warning."""
    ctx = context_of(runtime, state)
    if state["test_runs"][-1]["exit_code"] == 0:
        # Improve mode: a project green before any change still has its request to carry out.
        if state.get("improve") and not state.get("plans") and state["iteration"] < ctx.max_iterations:
            return "diagnose"
        return "finish"
    if budget_exceeded(state.get("usage", {}), ctx):
        return "finish"  # status budget: `resume` with a bigger budget goes on from here
    if state["iteration"] >= ctx.max_iterations:
        return "finish"
    if still_stuck(state, ctx.loop_window):
        return "escalate"
    return "diagnose"


def route_start(state: State) -> Literal["load", "design"]:
    """An existing project (improve mode) is loaded; otherwise one is designed."""
    return "load" if state.get("project_files") else "design"


def route_after_design(state: State, runtime: Runtime[Context]) -> Literal["review_plan", "generate"]:
    return "review_plan" if context_of(runtime, state).interactive else "generate"


def route_after_plan(state: State, runtime: Runtime[Context]) -> Literal["review_commands", "apply"]:
    """A person is asked only about the commands the policy leaves to a person."""
    return "review_commands" if commands_to_ask(state, context_of(runtime, state)) else "apply"


builder = StateGraph(State, input_schema=InputState, output_schema=OutputState, context_schema=Context)
builder.add_node("load", load)
builder.add_node("design", design)
builder.add_node("review_plan", review_plan)
builder.add_node("generate", generate)
builder.add_node("review_commands", review_commands)
builder.add_node("test", test)
builder.add_node("diagnose", diagnose)
builder.add_node("plan", plan)
builder.add_node("apply", apply)
builder.add_node("escalate", escalate)
builder.add_node("finish", finish)
builder.add_conditional_edges(START, route_start)
builder.add_edge("load", "test")
builder.add_conditional_edges("design", route_after_design)
builder.add_edge("generate", "test")
builder.add_conditional_edges("test", route_after_test)
builder.add_edge("diagnose", "plan")
builder.add_conditional_edges("plan", route_after_plan)
builder.add_edge("review_commands", "apply")
builder.add_edge("apply", "test")
builder.add_edge("finish", END)

graph = builder.compile(name="devlooper")
