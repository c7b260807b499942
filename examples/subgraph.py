"""devlooper as a node of your own graph (a subgraph).

A host graph turns a feature request into a prompt, lets devlooper build and
test the project, then writes a release note from devlooper's report. The
compiled devlooper graph is added as a node: it reads ``prompt`` and
``template`` from the host's state and writes back ``status``, ``reason``,
``iteration``, ``files`` and ``report``, the keys the two states share. The
host's checkpointer checkpoints devlooper's steps too, and the run's
``Context`` (model, sandbox, limits) reaches devlooper through the host's
context.

    python examples/subgraph.py                       # offline: replays examples/cassettes/slugify.json
    python examples/subgraph.py --model openai:gpt-5.1
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from typing_extensions import NotRequired, TypedDict

import devlooper
from devlooper import Context

CASSETTE = Path(__file__).parent / "cassettes" / "slugify.json"


class Release(TypedDict):
    request: str
    # Shared with devlooper's input and output: the subgraph reads and writes these.
    prompt: NotRequired[str]
    template: NotRequired[str]
    status: NotRequired[str]
    reason: NotRequired[str]
    iteration: NotRequired[int]
    files: NotRequired[dict[str, str]]
    report: NotRequired[dict]
    # The host's own result.
    note: NotRequired[str]


def write_prompt(state: Release) -> dict:
    return {"prompt": state["request"].strip().rstrip("."), "template": "python"}


def release_note(state: Release) -> dict:
    report = state["report"]
    runs = ", ".join(f"#{r['iteration']} exit {r['exit_code']}" for r in report["test_runs"])
    files = ", ".join(path for path in sorted(state["files"]) if path.endswith(".py"))
    return {"note": f"{state['status']}: {state['prompt']} ({files}); test runs: {runs}"}


host = StateGraph(Release, context_schema=Context)
host.add_node("write_prompt", write_prompt)
host.add_node("devlooper", devlooper.graph)  # the compiled graph itself is the node
host.add_node("release_note", release_note)
host.add_edge(START, "write_prompt")
host.add_edge("write_prompt", "devlooper")
host.add_edge("devlooper", "release_note")
host.add_edge("release_note", END)


async def main(argv: list[str] | None = None) -> dict:
    args = _args(argv)
    app = host.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    context = Context(model=args.model, output_dir=args.output, max_iterations=args.max_iterations)
    final = await app.ainvoke({"request": "A slugify function for URL slugs."}, config, context=context)
    print(final["note"])
    return final


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=f"replay:{CASSETTE}", help="provider:model (default: replay the example cassette)")
    p.add_argument("--output", default=None, help="write the finished project here")
    p.add_argument("--max-iterations", type=int, default=5)
    return p.parse_args(argv)


if __name__ == "__main__":
    result = asyncio.run(main())
    raise SystemExit(0 if result["status"] == "passed" else 1)
