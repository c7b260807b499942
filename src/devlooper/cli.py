"""The ``devlooper`` command.

Exit status: 0 the tests pass, 1 the run gave up (or failed), 2 a usage or
configuration error, always with one line that says what to do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import uuid
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from . import __version__
from .archive import list_runs, rebuild_report
from .context import Context
from .errors import ConfigError, DevlooperError
from .models import REPLAY_PREFIX, load_chat_model, recorder_for
from .nodes.common import sandbox_settings
from .output import check_output_dir
from .progress import View, view_for
from .runner import history, resume, run
from .sandboxes import sandbox_class
from .synthesis import Attempt, save_template, synthesize
from .templates import BUILTIN, get_template, is_template_path

console = Console(stderr=True, highlight=False)

DEMO_CASSETTE = resources.files("devlooper") / "cassettes" / "demo.json"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="devlooper", description="Write a project and fix it until its tests pass.")
    p.add_argument("--version", action="version", version=f"devlooper {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="generate a project from a prompt")
    r.add_argument("prompt", help="what to build")
    _settings(r)
    _common(r)

    rs = sub.add_parser(
        "resume",
        help="continue a run that stopped (crash, kill) or fork it from an earlier checkpoint",
        description="Continue THREAD_ID from its last checkpoint with the settings it was started with; "
        "options given here override them. With --from, run again from an earlier checkpoint "
        "(see `devlooper history`).",
    )
    rs.add_argument("thread_id", help="the thread id printed by `devlooper run`")
    rs.add_argument("--from", dest="checkpoint_id", default=None, metavar="CHECKPOINT_ID",
                    help="fork from this checkpoint instead of continuing from the last one")
    _settings(rs, template=False)
    _common(rs, defaults=False)

    h = sub.add_parser("history", help="list the checkpoints of a run")
    h.add_argument("thread_id", help="the thread id printed by `devlooper run`")
    h.add_argument("--db", default=None, help=DB_HELP)
    h.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")

    rn = sub.add_parser("runs", help="list past runs in the checkpoint database, newest first")
    rn.add_argument("--db", default=None, help=DB_HELP)
    rn.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    rn.add_argument("--limit", type=int, default=None, metavar="N", help="only the newest N runs")

    rp = sub.add_parser(
        "report",
        help="rebuild a run's report.json and report.html from its checkpoints",
        description="Write the report of THREAD_ID (finished, stopped or crashed) from its checkpoints; "
        "print the page's path.",
    )
    rp.add_argument("thread_id", help="the thread id (see `devlooper runs`)")
    rp.add_argument("--db", default=None, help=DB_HELP)
    rp.add_argument("--out", default=None, metavar="DIR",
                    help="where to write it (default: the run's output/.devlooper, else ./devlooper-report-THREAD)")

    d = sub.add_parser("demo", help="replay a bundled session offline; pytest runs for real")
    _common(d)

    sub.add_parser("templates", help="list the environment templates")

    t = sub.add_parser("template", help="work with environment templates")
    tsub = t.add_subparsers(dest="template_command", required=True)
    tn = tsub.add_parser(
        "new",
        help="synthesize a template from a description, checked in the sandbox",
        description="Ask the model for a template, build its environment and run its test command on a "
        "passing and a failing example project, repair it when that fails, and save it as a user template.",
    )
    tn.add_argument("description", help='what the template is, e.g. "Go 1.22 with go test"')
    tn.add_argument("--output", required=True, metavar="PATH", help="where to save the template (.toml)")
    tn.add_argument("--force", action="store_true", help="replace an existing file")
    tn.add_argument("--attempts", type=int, default=3, help="drafts before giving up (default 3)")
    _settings(tn, template=False)
    return p


DB_HELP = "checkpoint database: a SQLite file, or a postgresql:// URL (default: a SQLite file in the user data directory)"


def _settings(p: argparse.ArgumentParser, template: bool = True) -> None:
    if template:
        p.add_argument("--template", default=None, help="environment template (see `devlooper templates`)")
    p.add_argument("--sandbox", default=None, help="where code runs: local (default), e2b, modal")
    p.add_argument("--model", default=None, help="provider:model, or replay:CASSETTE (env: DEVLOOPER_MODEL)")
    p.add_argument("--base-url", default=None, help="base URL of an OpenAI-compatible server")
    p.add_argument("--record", default=None, metavar="PATH", help="record every model reply to a cassette")


def _common(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    # For `resume` every default is None: an option left out keeps the run's recorded setting.
    p.add_argument("--output", default="output" if defaults else None,
                   help="directory for the finished project (default: ./output)" if defaults
                   else "directory for the finished project (default: the run's own)")
    p.add_argument("--force", action="store_true", help="write into a non-empty output directory")
    p.add_argument("--max-iterations", type=int, default=None, help="test runs before giving up (default 10)")
    if defaults:
        p.add_argument("--thread-id", default=None, help="checkpoint thread id (default: a new one)")
    p.add_argument("--db", default=None, help=DB_HELP)
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
    _output_mode(p)


def _output_mode(p: argparse.ArgumentParser) -> None:
    """How a run is shown: a live view (default), more of it, only the result, or JSON events."""
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--verbose", "-v", dest="output_mode", action="store_const", const="verbose",
                      help="also show the whole diagnosis, the plan's actions and the diffs")
    mode.add_argument("--quiet", "-q", dest="output_mode", action="store_const", const="quiet",
                      help="print only the result, one line")
    mode.add_argument("--json", dest="output_mode", action="store_const", const="json",
                      help="one JSON event per line on stdout: the events a server streams (docs/events.md)")


def _given(args: argparse.Namespace) -> dict[str, object]:
    """The settings given on the command line (None where an option was left out)."""
    return {
        "model": getattr(args, "model", None),
        "base_url": getattr(args, "base_url", None),
        "record": getattr(args, "record", None),
        "sandbox": getattr(args, "sandbox", None),
        "isolation": getattr(args, "isolation", None),
        "template": _template_ref(getattr(args, "template", None)),
        "max_iterations": args.max_iterations,
        "output_dir": args.output,
        "loop_window": args.loop_window,
        "interactive": True if args.interactive else None,
        "keep_best": True if args.keep_best else None,
    }


def _template_ref(ref: str | None) -> str | None:
    """A template path made absolute: the run records it, and may resume from elsewhere."""
    if ref and is_template_path(ref):
        return str(Path(ref).expanduser().resolve())
    return ref


def _context(args: argparse.Namespace, **overrides: object) -> Context:
    given = {**_given(args), **overrides}
    ctx = Context(**{k: v for k, v in given.items() if v is not None})
    return _check(ctx, args.force)


def _check(ctx: Context, force: bool, output: bool = True) -> Context:
    """Fail before any work on what can be checked up front."""
    if ctx.max_iterations < 1:
        raise ConfigError("--max-iterations must be at least 1")
    if ctx.loop_window < 2:
        raise ConfigError("--loop-window must be at least 2 (one run cannot repeat itself)")
    get_template(ctx.template)
    sandbox_class(ctx.sandbox).check_config()
    load_chat_model(ctx.model, ctx.base_url)
    if output and ctx.output_dir:
        check_output_dir(ctx.output_dir, force)
    return ctx


def _banner(ctx: Context, thread_id: str, view: View) -> None:
    isolation = sandbox_settings(ctx)["isolation"]
    view.max_iterations = ctx.max_iterations
    view.start(thread_id)
    view.banner(
        f"[bold]devlooper[/] · template [cyan]{ctx.template}[/] · sandbox [cyan]{ctx.sandbox}[/] "
        f"· isolation [cyan]{isolation}[/] · model [cyan]{ctx.model}[/] · up to {ctx.max_iterations} iterations "
        f"· thread [cyan]{thread_id}[/]"
    )
    if isolation == "none":
        console.print(
            "[bold red]warning:[/] isolation none: generated code runs unconfined, as you, "
            "with your files and your network",
            soft_wrap=True,
        )


def _done(final: dict, output_dir: str | None, view: View) -> int:
    view.result(final, Path(output_dir).expanduser().resolve() if output_dir else None)
    return 0 if final.get("status") == "passed" else 1


async def _run(prompt: str, ctx: Context, args: argparse.Namespace) -> int:
    # The thread id is printed before any work: after a crash it is what `resume` needs.
    thread_id = args.thread_id = args.thread_id or uuid.uuid4().hex
    view = args.view
    _banner(ctx, thread_id, view)
    args.started = True
    ask = view.asking(_ask_human) if ctx.interactive else None
    with view:
        final = await run(prompt, ctx, thread_id=thread_id, db=args.db, on_update=view.update, ask=ask,
                          on_custom=view.custom)
    return _done(final, ctx.output_dir, view)


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


async def _resume(args: argparse.Namespace) -> int:
    given = _given(args)
    used: list[Context] = []

    def prepare(ctx: Context) -> Context:
        # The recorded output directory was checked when the run started (and may
        # hold a half-written output after a crash in finish); a new one is checked now.
        _check(ctx, args.force, output=given["output_dir"] is not None)
        _banner(ctx, args.thread_id, view)
        if args.checkpoint_id:
            view.banner(f"forking from checkpoint [cyan]{args.checkpoint_id}[/]")
        used.append(ctx)
        args.started = True
        return ctx

    view = args.view
    with view:
        final = await resume(
            args.thread_id, checkpoint_id=args.checkpoint_id, db=args.db, on_update=view.update,
            prepare=prepare, ask=view.asking(_ask_human), on_custom=view.custom, **given,
        )
    if final.get("already_finished"):
        console.print(
            f"thread {args.thread_id} already finished ({final.get('status')}); "
            "fork it from an earlier checkpoint with --from (see `devlooper history`)"
        )
    return _done(final, used[0].output_dir if used else None, view)


async def _history(args: argparse.Namespace) -> int:
    rows = await history(args.thread_id, db=args.db)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"{'checkpoint':<38} {'step':>4}  {'node':<9} {'next':<9} {'iter':>4} {'exit':>4} {'failing':>7}  status")
    for row in rows:
        dash = lambda v: "-" if v is None else v  # noqa: E731
        print(
            f"{row['checkpoint_id']:<38} {dash(row['step']):>4}  {row['node']:<9} {row['next'] or '-':<9} "
            f"{row['iteration']:>4} {dash(row['exit_code']):>4} {dash(row['failing']):>7}  {row['status'] or '-'}"
        )
    return 0


async def _runs(args: argparse.Namespace) -> int:
    rows = await list_runs(args.db, args.limit)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        console.print("no runs in this checkpoint database (see --db)")
        return 0
    print(f"{'thread':<32}  {'started':<19}  {'status':<10} {'iter':>4}  {'template':<10} prompt")
    for row in rows:
        prompt = " ".join(row["prompt"].split())
        print(f"{row['thread_id']:<32}  {row['started'][:19]:<19}  {row['status']:<10} {row['iterations']:>4}  "
              f"{(row['template'] or '-'):<10} {prompt[:70]}")
    return 0


async def _report(args: argparse.Namespace) -> int:
    page = await rebuild_report(args.thread_id, db=args.db, out=args.out)
    print(page)
    return 0


def _demo(args: argparse.Namespace) -> int:
    cassette = json.loads(DEMO_CASSETTE.read_text())
    ctx = _context(args, model=f"{REPLAY_PREFIX}{DEMO_CASSETTE}", sandbox="local", template=cassette["template"])
    args.view.banner(
        "[yellow]demo:[/] the model's replies are replayed from a recorded session "
        f"({DEMO_CASSETTE.name}); the sandbox, pytest, routing and checkpoints are real."
    )
    args.view.banner(f"prompt: [italic]{escape(cassette['prompt'])}[/]")
    return asyncio.run(_run(cassette["prompt"], ctx, args))


def _templates() -> int:
    for t in BUILTIN.values():
        print(f"{t.name:<10} {t.description}")
    print("\nor --template PATH: a user template file or folder (see docs/templates.md)")
    return 0


async def _template_new(args: argparse.Namespace) -> int:
    given = {"model": args.model, "base_url": args.base_url, "record": args.record, "sandbox": args.sandbox}
    ctx = Context(**{k: v for k, v in given.items() if v is not None})
    if args.attempts < 1:
        raise ConfigError("--attempts must be at least 1")
    if Path(args.output).exists() and not args.force:
        raise ConfigError(f"{args.output} exists; use --force to replace it")
    sandbox_class(ctx.sandbox).check_config()
    model = load_chat_model(ctx.model, ctx.base_url)
    console.print(f"[bold]devlooper[/] · new template · sandbox [cyan]{ctx.sandbox}[/] · model [cyan]{ctx.model}[/]")

    def report(attempt: Attempt) -> None:
        verdict = "[green]works[/]" if attempt.problem is None else f"[red]failed[/]: {escape(attempt.problem[:400])}"
        console.print(f"draft {attempt.number} [cyan]{escape(attempt.draft.name)}[/]: {verdict}")

    done = await synthesize(
        args.description, model, backend=ctx.sandbox, attempts=args.attempts,
        recorder=recorder_for(ctx.record, ctx.model), on_attempt=report,
    )
    if not done.ok:
        console.print(f"no working template after {args.attempts} draft(s); the last problem is above")
        return 1
    path = save_template(done.template, args.output, force=args.force)
    console.print(f"saved [bold]{path}[/]; use it with [bold]devlooper run --template {path} PROMPT[/]")
    print(path)
    return 0


def _stop_on_sigterm() -> None:
    """Treat SIGTERM (a `kill`, a CI timeout, a container stop) like Ctrl-C: the running
    step is cancelled, its commands are killed, sandboxes are removed and the last
    checkpoint stays for `resume`. Only the main thread may set signal handlers."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("run", "demo", "resume"):
        _stop_on_sigterm()
        args.view = view_for(args.output_mode, console)
    try:
        if args.command == "templates":
            return _templates()
        if args.command == "template":
            return asyncio.run(_template_new(args))
        if args.command == "demo":
            return _demo(args)
        if args.command == "resume":
            return asyncio.run(_resume(args))
        if args.command == "history":
            return asyncio.run(_history(args))
        if args.command == "runs":
            return asyncio.run(_runs(args))
        if args.command == "report":
            return asyncio.run(_report(args))
        return asyncio.run(_run(args.prompt, _context(args), args))
    except ConfigError as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)  # one line, never wrapped
        _how_to_resume(args)
        return 2
    except DevlooperError as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)  # one line, never wrapped
        _how_to_resume(args)
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]; the run is checkpointed")
        _how_to_resume(args)
        return 130
    except Exception as exc:  # a crash of the model client or an SDK: say what, keep the checkpoint
        console.print(f"[red]error:[/] {type(exc).__name__}: {exc}")
        _how_to_resume(args)
        return 1


def _how_to_resume(args: argparse.Namespace) -> None:
    """After a run stopped on an error: the command that continues it."""
    if args.command in ("run", "demo", "resume") and getattr(args, "thread_id", None) and getattr(args, "started", False):
        db = f" --db {args.db}" if args.db else ""
        console.print(f"continue it with: [bold]devlooper resume {args.thread_id}{db}[/]", soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
