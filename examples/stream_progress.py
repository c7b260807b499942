"""Following a devlooper run as it happens: ``astream`` and ``astream_events``.

``--mode updates`` streams one update per finished step, each with its ``event``
(what the CLI prints): the test verdict with the failing tests, the diagnosis, the
plan, the edits; and the custom events that say which model call is in flight. ``--mode events`` streams
LangChain events: every step as it starts and ends and every model call, named
by its step (``devlooper.diagnose``, ``devlooper.fix_file`` ...) with its call
key, which is what a UI needs to show a spinner per step.

    python examples/stream_progress.py --mode updates
    python examples/stream_progress.py --mode events
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver

import devlooper
from devlooper import Context

CASSETTE = Path(__file__).parent / "cassettes" / "slugify.json"
STEPS = {"design", "generate", "test", "diagnose", "plan", "apply", "finish"}


async def stream_updates(graph, payload: dict, config: dict, context: Context) -> None:
    # Each step's update carries its `event` (what it did, bounded: docs/events.md);
    # custom events say when a model call starts, while the step is still running.
    async for mode, chunk in graph.astream(payload, config, context=context, stream_mode=["updates", "custom"]):
        if mode == "custom":
            if chunk["event"] == "model_start":
                print(f"  ...      waiting for {chunk['key']}")
            continue
        for step, update in chunk.items():
            event = update.get("event", {})
            if step == "test":
                failing = ", ".join(f["name"] for f in event["failing"])
                print(f"test     #{event['iteration']}: exit {event['exit_code']}, {event['passed']} passed, "
                      f"{event['failed']} failed{f' ({failing})' if failing else ''}")
            elif step == "diagnose":
                print(f"diagnose {event['diagnosis'].splitlines()[0][:80]}")
            elif step == "plan":
                print(f"plan     {event['summary']}")
            elif step == "apply":
                print(f"apply    edited {', '.join(e['path'] for e in event['edits']) or 'nothing'}")
            else:
                print(f"{step:<8} done")


async def stream_events(graph, payload: dict, config: dict, context: Context) -> None:
    async for event in graph.astream_events(payload, config, context=context, version="v2"):
        kind, name, meta = event["event"], event["name"], event.get("metadata", {})
        if kind in ("on_chain_start", "on_chain_end") and name in STEPS and meta.get("langgraph_node") == name:
            print(f"{'start' if kind.endswith('start') else 'end':<5} {name}")
        elif kind == "on_chat_model_start":
            print(f"model {meta.get('devlooper_call')}")


async def main(argv: list[str] | None = None) -> dict:
    args = _args(argv)
    graph = devlooper.builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    context = Context(model=args.model, output_dir=args.output, max_iterations=args.max_iterations)
    payload = {"prompt": "a slugify function for URL slugs", "template": "python"}
    follow = stream_updates if args.mode == "updates" else stream_events
    await follow(graph, payload, config, context)
    final = (await graph.aget_state(config)).values
    print(f"{final['status']}: {final['reason']}")
    return final


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["updates", "events"], default="updates")
    p.add_argument("--model", default=f"replay:{CASSETTE}", help="provider:model (default: replay the example cassette)")
    p.add_argument("--output", default=None, help="write the finished project here")
    p.add_argument("--max-iterations", type=int, default=5)
    return p.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(0 if asyncio.run(main())["status"] == "passed" else 1)
