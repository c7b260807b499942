"""The ``devlooper`` command.

Exit status: 0 the tests pass, 1 the run gave up (or failed), 2 a usage or
configuration error, always with one line that says what to do, 3 the run is
paused on a question nobody here can answer (resumable), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from . import __version__
from .bench import cli as bench_cli
from .budgets import MAX_PROMPT_TOKENS
from .context import REPLAY_PREFIX, STRUCTURED_MODES, Context
from .errors import ConfigError, DevlooperError
from .output import check_output_dir, existing_files
from .progress import View, view_for
from .templates import BUILTIN, get_template, is_template_path

# The graph, the model libraries and the sandbox backends are imported by the
# commands that use them (``_heavy``): `--help`, `templates` and `cache` start at once.

console = Console(stderr=True, highlight=False)

DEMO_CASSETTE = resources.files("devlooper") / "cassettes" / "demo.json"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="devlooper", description="Write a project and fix it until its tests pass.")
    p.add_argument("--version", action="version", version=f"devlooper {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="generate a project from a prompt, or improve one (--from)")
    r.add_argument("prompt", help='what to build, or with --from what to change ("add X", "make the tests pass")')
    r.add_argument("--from", dest="source", default=None, metavar="DIR",
                   help="improve this existing project (read only; .gitignore respected) instead of generating one")
    r.add_argument("--in-place", action="store_true",
                   help="with --from on a git repository: work on a new branch there and commit each green step")
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
    rs.add_argument("--answer", default=None, metavar="TEXT",
                    help="the answer to the question the run is paused on (for a script; a terminal is asked)")
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
    _isolation_option(d)
    _common(d)

    c = sub.add_parser("cache", help="list the local environment cache (size, last use), or clear it")
    c.add_argument("action", nargs="?", choices=["list", "clear"], default="list")

    sub.add_parser("templates", help="list the environment templates")

    bench_cli.add_parser(sub)

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
    # A template draft is bounded by --attempts and shows no project code: the loop's
    # budgets and retrieval options do not apply to it.
    _settings(tn, template=False, loop=False)
    return p


DB_HELP = "checkpoint database: a SQLite file, or a postgresql:// URL (default: a SQLite file in the user data directory)"


def _settings(p: argparse.ArgumentParser, template: bool = True, loop: bool = True) -> None:
    """The run settings a command takes; ``loop``: whether it runs the fix loop, whose prompts
    show a project's code and whose budgets apply."""
    if template:
        p.add_argument("--template", default=None, help="environment template (see `devlooper templates`)")
    p.add_argument("--sandbox", default=None, help="where code runs: local (default), e2b, modal")
    p.add_argument("--model", default=None, help="provider:model, or replay:CASSETTE (env: DEVLOOPER_MODEL)")
    p.add_argument("--base-url", default=None, help="base URL of an OpenAI-compatible server")
    if loop:
        p.add_argument("--embeddings", default=None, metavar="PROVIDER:MODEL",
                       help="embedding model that helps choose the code a prompt shows, with BM25 "
                       "(e.g. openai:text-embedding-3-small; default none: BM25 alone) (env: DEVLOOPER_EMBEDDINGS)")
        p.add_argument("--embeddings-base-url", default=None, metavar="URL",
                       help="base URL of the OpenAI-compatible server for --embeddings (default: --base-url)")
    p.add_argument("--record", default=None, metavar="PATH", help="record every model reply to a cassette")
    _isolation_option(p)
    p.add_argument("--structured-output", default=None, choices=STRUCTURED_MODES,
                   help="how plans are asked for: json_schema (default), function_calling, json_mode (docs/models.md)")
    if loop:
        _budget_options(p)


def _budget_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-prompt-tokens", type=int, default=None, metavar="N",
                   help=f"tokens one prompt may hold (default {MAX_PROMPT_TOKENS})")
    p.add_argument("--max-tokens", type=int, default=None, metavar="N",
                   help="tokens the whole run may use; over it the run stops with status budget (resumable)")
    p.add_argument("--max-cost", type=float, default=None, metavar="USD",
                   help="estimated US dollars the run may cost; over it the run stops with status budget")
    p.add_argument("--prices", default=None, metavar="PATH",
                   help='JSON price table extending the built-in one: {"model": {"input": USD/Mtok, "output": USD/Mtok}}')


def _isolation_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--isolation", default=None, choices=["bwrap", "none"],
        help="how the local sandbox confines generated code: bwrap (default; required) or none "
        "(unconfined: accept the risk) (env: DEVLOOPER_ISOLATION)",
    )


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
        help="pause and ask here: approve the generation plan, approve each command, guide a stuck loop",
    )
    p.add_argument(
        "--commands", choices=("allow", "deny", "ask"), default=None,
        help="command actions of a plan: allow (run), deny (refuse; the model is told) or ask a person "
        "(default: ask with --interactive, else allow)",
    )
    p.add_argument(
        "--allow-command", dest="allow_commands", action="append", default=None, metavar="PREFIX",
        help="a command prefix that always runs without asking (repeatable; whole words, no shell operators)",
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
        "embeddings": getattr(args, "embeddings", None),
        "embeddings_base_url": getattr(args, "embeddings_base_url", None),
        "record": getattr(args, "record", None),
        "structured_output": getattr(args, "structured_output", None),
        "max_prompt_tokens": getattr(args, "max_prompt_tokens", None),
        "max_tokens": getattr(args, "max_tokens", None),
        "max_cost": getattr(args, "max_cost", None),
        "prices": getattr(args, "prices", None),
        "sandbox": getattr(args, "sandbox", None),
        "isolation": getattr(args, "isolation", None),
        "template": _template_ref(getattr(args, "template", None)),
        "max_iterations": args.max_iterations,
        "output_dir": args.output,
        "loop_window": args.loop_window,
        "interactive": True if args.interactive else None,
        "commands": args.commands,
        "allow_commands": args.allow_commands,
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
    from .approval import check_policy  # noqa: PLC0415
    from .models import load_chat_model, load_embeddings  # noqa: PLC0415
    from .sandboxes import sandbox_class  # noqa: PLC0415
    from .usage import price_of  # noqa: PLC0415

    if ctx.max_iterations < 1:
        raise ConfigError("--max-iterations must be at least 1")
    if ctx.loop_window < 2:
        raise ConfigError("--loop-window must be at least 2 (one run cannot repeat itself)")
    if ctx.max_prompt_tokens < 1_000:
        raise ConfigError("--max-prompt-tokens must be at least 1000 (the instructions alone need some)")
    if ctx.max_tokens < 0 or ctx.max_cost < 0:
        raise ConfigError("--max-tokens and --max-cost must not be negative (0 is no limit)")
    if ctx.max_cost and price_of(ctx.model, ctx.prices) is None:
        raise ConfigError(
            f"--max-cost needs the price of {ctx.model}: add it to a price table given with --prices (docs/models.md)"
        )
    get_template(ctx.template)
    check_policy(ctx)
    sandbox_class(ctx.sandbox).check_config(ctx)
    load_chat_model(ctx.model, ctx.base_url)
    if ctx.embeddings:
        load_embeddings(ctx.embeddings, ctx.embeddings_base_url or ctx.base_url)
    if output and ctx.output_dir:
        check_output_dir(ctx.output_dir, force)
        _list_replaced(ctx.output_dir, force)
    return ctx


def _list_replaced(output_dir: str, force: bool) -> None:
    """--force into a folder with files: say which may be replaced, and that none is deleted."""
    existing = existing_files(output_dir) if force else []
    if existing:
        shown = ", ".join(existing[:20]) + (f", ... ({len(existing) - 20} more)" if len(existing) > 20 else "")
        console.print(
            f"[yellow]--force:[/] {len(existing)} file(s) already in {escape(output_dir)}; those the run writes "
            f"are replaced, none is deleted: {escape(shown)}",
            soft_wrap=True,
        )


def _banner(ctx: Context, thread_id: str, view: View) -> None:
    from .nodes.common import sandbox_settings  # noqa: PLC0415

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


PAUSED = 3  # exit status of a run paused on a question nobody answered here


def _done(final: dict, output_dir: str | None, view: View) -> int:
    if final.get("interrupt") is not None:
        kind = final["interrupt"].get("kind", "a question")
        view.note(
            f"thread [cyan]{final['thread_id']}[/] · paused ({kind}): waiting for an answer; "
            f"continue it with: [bold]devlooper resume {final['thread_id']}[/] (at a terminal, or with --answer TEXT)"
        )
        return PAUSED
    view.result(final, Path(output_dir).expanduser().resolve() if output_dir else None)
    if usage := (final.get("report") or {}).get("usage"):
        cost = f" · ~${usage['cost_usd']:.4f}" if usage.get("cost_usd") is not None else ""
        view.note(
            f"usage: {usage['input_tokens']} input + {usage['output_tokens']} output tokens "
            f"in {usage['calls']} model calls{cost}"
        )
    if final.get("status") == "budget":
        view.note(f"{final.get('reason')}: [bold]devlooper resume {final['thread_id']} --max-tokens N[/]")
    replaced = ((final.get("report") or {}).get("output") or {}).get("replaced") or []
    if replaced:
        view.note(f"replaced {len(replaced)} existing file(s): {escape(', '.join(replaced[:20]))}")
    return 0 if final.get("status") == "passed" else 1


async def _run(prompt: str, ctx: Context, args: argparse.Namespace) -> int:
    from .improve import InPlace, detect_template, load_project  # noqa: PLC0415
    from .runner import run  # noqa: PLC0415

    freeze_objects()  # the program runs one run: what the imports made stays out of full collections
    # The thread id is printed before any work: after a crash it is what `resume` needs.
    thread_id = args.thread_id = args.thread_id or uuid.uuid4().hex
    loaded, template, in_place = None, None, None
    if getattr(args, "source", None):
        loaded = load_project(args.source, getattr(args, "template", None))
        template = getattr(args, "template", None) or detect_template(loaded.files)
        if template is None:
            raise ConfigError(f"cannot tell the template of {args.source} (no pyproject.toml, package.json or "
                              "Cargo.toml); name it with --template (see `devlooper templates`)")
        if args.in_place:
            in_place = InPlace(args.source, loaded.files, prompt, thread_id)
        ctx.template = template
        skipped = f", {len(loaded.skipped)} skipped (binary, large, links)" if loaded.skipped else ""
        args.view.note(f"improving [bold]{escape(str(args.source))}[/]: {len(loaded.files)} files{skipped}"
                       + (f" · branch [cyan]{in_place.branch}[/]" if in_place else ""))
    elif getattr(args, "in_place", False):
        raise ConfigError("--in-place works on an existing project: give it with --from DIR")
    view = args.view
    _banner(ctx, thread_id, view)
    args.started = True
    ask = view.asking(_ask_human) if ctx.interactive or ctx.command_policy() == "ask" else None

    def on_update(node: str, update: dict) -> None:
        view.update(node, update)
        if in_place:
            in_place.on_update(node, update)

    with view:
        final = await run(prompt, ctx, thread_id=thread_id, db=args.db, on_update=on_update, ask=ask,
                          template=template, project_files=loaded.files if loaded else None, on_custom=view.custom)
    if in_place:
        view.note(f"branch [cyan]{in_place.branch}[/] in {in_place.root}: {len(in_place.commits)} commit(s)")
    return _done(final, ctx.output_dir, view)


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _prompt(label: str) -> str | None:
    """One line from the terminal; None at end of input. Ctrl-C raises KeyboardInterrupt
    at once: asyncio's own SIGINT handler only cancels the run at its next await, and
    the run is waiting here, so the default handler is in place while the person types."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if main else None
    try:
        return console.input(label)
    except EOFError:
        return None
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _ask_human(question: dict) -> object:
    """The graph paused for a person: show why, and read the answer (None leaves the run
    paused, e.g. when stdin is not a terminal: nothing can answer, and nothing hangs)."""
    if not _stdin_is_terminal():
        return None
    kind = question.get("kind", "stuck")
    if kind == "plan":
        return _ask_plan(question)
    if kind == "command":
        return _ask_command(question)
    console.print(f"[bold yellow]stuck[/] {escape(question['reason'])}")
    console.print(f"last run: {question['passed']} passed, {question['failed']} failed")
    if question.get("diagnosis"):
        console.print(f"last diagnosis: [italic]{escape(question['diagnosis'][:600])}[/]")
    console.print(question["question"])
    return _prompt("[bold]guidance>[/] ")


def _with_guidance(line: str, approve: str = "approve") -> object:
    """'ok: TEXT' approves and adds guidance; other answers are read by devlooper.approval."""
    head, _, rest = line.partition(":")
    if head.strip().lower() in ("ok", "y", "yes") and rest.strip():
        return {"action": approve, "guidance": rest.strip()}
    return line


def _ask_plan(question: dict) -> object:
    plan = question.get("plan") or {}
    console.print("[bold yellow]plan[/] the model wants to write:")
    for spec in plan.get("files", []):
        console.print(f"  {escape(spec['path'])}: {escape(spec.get('purpose', '')[:200])}")
    if plan.get("packages"):
        console.print(f"  packages: {escape(' '.join(plan['packages']))}")
    if question.get("problem"):
        console.print(f"[red]{escape(question['problem'])}[/]")
    console.print("Enter approves · 'e' edits it in $EDITOR · other text rejects it, as guidance for a new plan "
                  "· 'ok: TEXT' approves with guidance")
    line = _prompt("[bold]plan>[/] ")
    if line is None:
        return None
    if line.strip().lower() == "e":
        return {"action": "edit", "plan": _edit_json(plan)}
    return _with_guidance(line)


def _ask_command(question: dict) -> object:
    console.print(f"[bold yellow]command[/] iteration {question['iteration']}: {escape(question.get('summary', ''))}")
    console.print(f"  [bold]{escape(question['command'])}[/]")
    console.print("Enter runs it · 'n' refuses it · other text refuses it and tells the model why "
                  "· 'ok: TEXT' runs it with guidance")
    line = _prompt("[bold]run?>[/] ")
    return None if line is None else _with_guidance(line)


def _edit_json(data: dict) -> object:
    """The plan as JSON in the person's editor; what they save is validated by the graph."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise ConfigError("set $EDITOR (or $VISUAL) to edit a plan; the run is paused, resume it to answer again")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(data, f, indent=2)
    try:
        subprocess.run([*shlex.split(editor), f.name], check=False)
        text = Path(f.name).read_text()
    finally:
        os.unlink(f.name)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return {"invalid JSON": str(exc)}  # the graph says it is not a plan, and asks again


async def _resume(args: argparse.Namespace) -> int:
    from .runner import resume  # noqa: PLC0415

    freeze_objects()  # the program runs one run: what the imports made stays out of full collections

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

    answers = [args.answer] if args.answer is not None else []

    def ask(question: dict) -> object:
        return answers.pop() if answers else _ask_human(question)

    view = args.view
    with view:
        final = await resume(
            args.thread_id, checkpoint_id=args.checkpoint_id, db=args.db, on_update=view.update,
            prepare=prepare, ask=view.asking(ask), on_custom=view.custom, **given,
        )
    if final.get("already_finished"):
        console.print(
            f"thread {args.thread_id} already finished ({final.get('status')}); "
            "fork it from an earlier checkpoint with --from (see `devlooper history`)"
        )
    return _done(final, used[0].output_dir if used else None, view)


async def _history(args: argparse.Namespace) -> int:
    from .archive import history  # noqa: PLC0415

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
    from .archive import list_runs  # noqa: PLC0415

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
    from .archive import rebuild_report  # noqa: PLC0415

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
    from .models import load_chat_model, recorder_for  # noqa: PLC0415
    from .sandboxes import sandbox_class  # noqa: PLC0415
    from .synthesis import Attempt, save_template, synthesize  # noqa: PLC0415

    given = {"model": args.model, "base_url": args.base_url, "record": args.record, "sandbox": args.sandbox,
             "isolation": args.isolation, "structured_output": args.structured_output}
    ctx = Context(**{k: v for k, v in given.items() if v is not None})
    if args.attempts < 1:
        raise ConfigError("--attempts must be at least 1")
    if Path(args.output).exists() and not args.force:
        raise ConfigError(f"{args.output} exists; use --force to replace it")
    sandbox_class(ctx.sandbox).check_config(ctx)
    model = load_chat_model(ctx.model, ctx.base_url)
    console.print(f"[bold]devlooper[/] · new template · sandbox [cyan]{ctx.sandbox}[/] · model [cyan]{ctx.model}[/]")

    def report(attempt: Attempt) -> None:
        verdict = "[green]works[/]" if attempt.problem is None else f"[red]failed[/]: {escape(attempt.problem[:400])}"
        console.print(f"draft {attempt.number} [cyan]{escape(attempt.draft.name)}[/]: {verdict}")

    done = await synthesize(
        args.description, model, backend=ctx.sandbox, attempts=args.attempts,
        recorder=recorder_for(ctx.record, ctx.model), on_attempt=report, structured_output=ctx.structured_output,
    )
    if not done.ok:
        console.print(f"no working template after {args.attempts} draft(s); the last problem is above")
        return 1
    path = save_template(done.template, args.output, force=args.force)
    console.print(f"saved [bold]{path}[/]; use it with [bold]devlooper run --template {path} PROMPT[/]")
    print(path)
    return 0


def _cache(action: str) -> int:
    """The local environment cache: its entries (least recently used first), or clear it."""
    from datetime import datetime  # noqa: PLC0415

    from .sandboxes.envcache import EnvCache  # noqa: PLC0415
    from .sandboxes.isolation import LocalSettings  # noqa: PLC0415

    settings = LocalSettings.from_env("none")
    roots = sorted(Path(settings.cache_dir, "envs").glob("*"))
    caches = [EnvCache(root) for root in roots if root.is_dir()]
    if action == "clear":
        removed = sum(cache.clear() for cache in caches)
        console.print(f"removed {removed} environment(s) from {Path(settings.cache_dir, 'envs')}")
        return 0
    total = 0
    print(f"{'key':<24} {'isolation':<9} {'size MB':>8}  {'last used':<19}  template: layers")
    for cache in caches:
        for entry in cache.entries():
            total += entry.size
            used = datetime.fromtimestamp(entry.last_used).strftime("%Y-%m-%d %H:%M:%S")
            layers = " | ".join(f"{x.get('kind')} {x.get('spec')}"[:60] for x in entry.layers) or "(base)"
            print(f"{entry.key:<24} {cache.root.name:<9} {entry.size / 2**20:>8.1f}  {used:<19}  {entry.template}: {layers}")
    cap = f"{settings.cache_max_mb} MB" if settings.cache_max_mb else "no cap"
    print(f"total {total / 2**20:.1f} MB of {cap} (DEVLOOPER_CACHE_MAX_MB) in {Path(settings.cache_dir, 'envs')}")
    return 0


def _stop_on_sigterm() -> None:
    """Treat SIGTERM (a `kill`, a CI timeout, a container stop) like Ctrl-C: the running
    step is cancelled, its commands are killed, sandboxes are removed and the last
    checkpoint stays for `resume`. Only the main thread may set signal handlers."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


_program = False  # this process is the devlooper program (main() reading sys.argv)


def freeze_objects() -> None:
    """In the devlooper program, leave every object alive now out of the garbage
    collector's full collections (``gc.freeze``); what is allocated later is collected as
    before. A process that imported the graph and its model libraries holds over 100 000
    long-lived objects, and every full collection walks them all: one took 100-180 ms in
    the middle of an iteration, and the one at exit a second on a busy machine. The
    program runs one run and ends, so it freezes before the run and on its way out. A
    caller of ``main(argv)`` (a test, an embedding app) keeps its own collector as it is:
    cyclic garbage alive at a freeze would never be freed in a long-lived process."""
    if _program:
        gc.freeze()


def main(argv: list[str] | None = None) -> int:
    """The command line; ``argv=None`` (the ``devlooper`` program) reads ``sys.argv``."""
    global _program
    _program = _program or argv is None
    try:
        return _main(argv)
    finally:
        # The process ends next, and nothing left holds anything to release: the
        # sandboxes, the saver and the output are closed by now.
        freeze_objects()


def _main(argv: list[str] | None) -> int:
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
        if args.command == "cache":
            return _cache(args.action)
        if args.command == "runs":
            return asyncio.run(_runs(args))
        if args.command == "report":
            return asyncio.run(_report(args))
        if args.command == "bench":
            return bench_cli.main(args, console)
        overrides = {"output_dir": None} if getattr(args, "in_place", False) else {}
        return asyncio.run(_run(args.prompt, _context(args, **overrides), args))
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
