"""The ``devlooper`` command.

Exit status: 0 the tests pass, 1 the run gave up (or failed), 2 a usage or
configuration error, always with one line that says what to do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from . import __version__
from .context import Context
from .errors import ConfigError, DevlooperError
from .models import REPLAY_PREFIX, load_chat_model
from .output import check_output_dir
from .progress import Progress
from .runner import run
from .sandboxes import sandbox_class
from .templates import BUILTIN, get_template

console = Console(stderr=True, highlight=False)

DEMO_CASSETTE = resources.files("devlooper") / "cassettes" / "demo.json"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="devlooper", description="Write a project and fix it until its tests pass.")
    p.add_argument("--version", action="version", version=f"devlooper {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="generate a project from a prompt")
    r.add_argument("prompt", help="what to build")
    r.add_argument("--template", default=None, help="environment template (see `devlooper templates`)")
    r.add_argument("--sandbox", default=None, help="where code runs: local (default), e2b, modal")
    r.add_argument("--model", default=None, help="provider:model, or replay:CASSETTE (env: DEVLOOPER_MODEL)")
    r.add_argument("--base-url", default=None, help="base URL of an OpenAI-compatible server")
    r.add_argument("--record", default=None, metavar="PATH", help="record every model reply to a cassette")
    _common(r)

    d = sub.add_parser("demo", help="replay a bundled session offline; pytest runs for real")
    _common(d)

    sub.add_parser("templates", help="list the environment templates")
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="output", help="directory for the finished project (default: ./output)")
    p.add_argument("--force", action="store_true", help="write into a non-empty output directory")
    p.add_argument("--max-iterations", type=int, default=None, help="test runs before giving up (default 10)")
    p.add_argument("--thread-id", default=None, help="checkpoint thread id (default: a new one)")
    p.add_argument("--db", default=None, help="SQLite checkpoint file (default: in the user data directory)")
    p.add_argument(
        "--interactive",
        action="store_true",
        help="when the model keeps looping after a warning, ask for guidance here instead of stopping",
    )
    p.add_argument(
        "--keep-best",
        action="store_true",
        help="if the tests never pass, write the iteration with the most passing tests, not the last",
    )
    p.add_argument(
        "--loop-window", type=int, default=None, metavar="K",
        help="runs with the same failure or no more passing tests that count as a loop (default 3)",
    )


def _context(args: argparse.Namespace, **overrides: object) -> Context:
    given = {
        "model": getattr(args, "model", None),
        "base_url": getattr(args, "base_url", None),
        "record": getattr(args, "record", None),
        "sandbox": getattr(args, "sandbox", None),
        "template": getattr(args, "template", None),
        "max_iterations": args.max_iterations,
        "output_dir": args.output,
        "loop_window": args.loop_window,
        "interactive": True if args.interactive else None,
        "keep_best": True if args.keep_best else None,
    }
    given.update(overrides)
    ctx = Context(**{k: v for k, v in given.items() if v is not None})
    if ctx.max_iterations < 1:
        raise ConfigError("--max-iterations must be at least 1")
    if ctx.loop_window < 2:
        raise ConfigError("--loop-window must be at least 2 (one run cannot repeat itself)")
    # Fail before any work on what can be checked up front.
    get_template(ctx.template)
    sandbox_class(ctx.sandbox).check_config()
    load_chat_model(ctx.model, ctx.base_url)
    check_output_dir(ctx.output_dir, args.force)
    return ctx


async def _run(prompt: str, ctx: Context, args: argparse.Namespace) -> int:
    console.print(
        f"[bold]devlooper[/] · template [cyan]{ctx.template}[/] · sandbox [cyan]{ctx.sandbox}[/] "
        f"· model [cyan]{ctx.model}[/] · up to {ctx.max_iterations} iterations"
    )
    ask = _ask_human if ctx.interactive else None
    final = await run(prompt, ctx, thread_id=args.thread_id, db=args.db, on_update=Progress(console), ask=ask)
    status = final.get("status")
    console.print(f"thread [cyan]{final['thread_id']}[/] · output in [bold]{Path(ctx.output_dir).resolve()}[/]")
    print(Path(ctx.output_dir).resolve())
    return 0 if status == "passed" else 1


def _ask_human(question: dict) -> str:
    """The graph paused on a loop: show it and read one line of guidance."""
    console.print(f"[bold yellow]stuck[/] {escape(question['reason'])}")
    console.print(f"last run: {question['passed']} passed, {question['failed']} failed")
    if question.get("diagnosis"):
        console.print(f"last diagnosis: [italic]{escape(question['diagnosis'][:600])}[/]")
    console.print(question["question"])
    try:
        return console.input("[bold]guidance>[/] ")
    except EOFError:
        return ""


def _demo(args: argparse.Namespace) -> int:
    cassette = json.loads(DEMO_CASSETTE.read_text())
    ctx = _context(args, model=f"{REPLAY_PREFIX}{DEMO_CASSETTE}", sandbox="local", template=cassette["template"])
    console.print(
        "[yellow]demo:[/] the model's replies are replayed from a recorded session "
        f"({DEMO_CASSETTE.name}); the sandbox, pytest, routing and checkpoints are real."
    )
    console.print(f"prompt: [italic]{cassette['prompt']}[/]")
    return asyncio.run(_run(cassette["prompt"], ctx, args))


def _templates() -> int:
    for t in BUILTIN.values():
        print(f"{t.name:<10} {t.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "templates":
            return _templates()
        if args.command == "demo":
            return _demo(args)
        return asyncio.run(_run(args.prompt, _context(args), args))
    except ConfigError as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)  # one line, never wrapped
        return 2
    except DevlooperError as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)  # one line, never wrapped
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]; the run is checkpointed")
        return 130
    except Exception as exc:  # a crash of the model client or an SDK: say what, keep the checkpoint
        console.print(f"[red]error:[/] {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
