"""The devlooper graph: generate -> test -> (finish | diagnose -> plan -> apply -> test),
with escalate (ask a human, or stop as stuck) when a warned model keeps looping.

``graph`` is compiled without a checkpointer: the LangGraph server brings its
own persistence. The CLI and embedders compile ``builder`` with their saver.
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from .context import Context
from .loops import still_stuck
from .nodes import apply, diagnose, escalate, finish, generate, plan, test
from .nodes.common import context_of
from .state import InputState, OutputState, State
from .usage import budget_exceeded


def route_after_test(state: State, runtime: Runtime[Context]) -> Literal["finish", "diagnose", "escalate"]:
    """Green goes to finish; red goes to diagnose while the iteration and token budgets last,
    or to escalate when the model is still looping after a warning."""
    ctx = context_of(runtime)
    if state["test_runs"][-1]["exit_code"] == 0:
        return "finish"
    if budget_exceeded(state.get("usage", {}), ctx):
        return "finish"  # status budget: `resume` with a bigger budget goes on from here
    if state["iteration"] >= ctx.max_iterations:
        return "finish"
    if still_stuck(state, ctx.loop_window):
        return "escalate"
    return "diagnose"


builder = StateGraph(State, input_schema=InputState, output_schema=OutputState, context_schema=Context)
builder.add_node("generate", generate)
builder.add_node("test", test)
builder.add_node("diagnose", diagnose)
builder.add_node("plan", plan)
builder.add_node("apply", apply)
builder.add_node("escalate", escalate)
builder.add_node("finish", finish)
builder.add_edge(START, "generate")
builder.add_edge("generate", "test")
builder.add_conditional_edges("test", route_after_test)
builder.add_edge("diagnose", "plan")
builder.add_edge("plan", "apply")
builder.add_edge("apply", "test")
builder.add_edge("finish", END)

graph = builder.compile(name="devlooper")
