"""``devlooper bench``: the command's forms and what each prints.

``devlooper bench [SUITE]`` runs a suite (the bundled one when none is given,
replayed from its cassettes unless ``--model`` names a model), prints the table
and writes results.json and results.html into ``--out``. ``devlooper bench
compare A.json B.json`` prints the per-task differences. ``devlooper bench
import-exercism TRACK --to SUITE`` turns Exercism exercises into task folders.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ..errors import ConfigError
from ..context import STRUCTURED_MODES
from .compare import compare
from .exercism import import_exercises
from .render import comparison_table, table
from .results import PAGE_FILE, REPLAY, RESULTS_FILE, TaskResult, load_results, published_schema
from .suite import bundled_suite, load_suite

FORMS = ("compare", "import-exercism", "schema")


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser(
        "bench",
        help="measure a model on tasks with hidden acceptance tests (docs/bench.md)",
        description="devlooper bench [SUITE]: run every task of SUITE (default: the bundled suite, replayed "
        "offline) and check each output with its hidden tests. Also: devlooper bench compare A.json B.json; "
        "devlooper bench import-exercism TRACK_DIR --to SUITE_DIR; devlooper bench schema.",
    )
    b.add_argument("args", nargs="*", metavar="SUITE", help="a suite folder, or compare A B, import-exercism DIR, schema")
    b.add_argument("--model", default=None,
                   help="provider:model, or replay: each task's cassette (default for the bundled suite)")
    b.add_argument("--base-url", default=None, help="base URL of an OpenAI-compatible server (Ollama, vLLM)")
    b.add_argument("--structured-output", default=None, choices=STRUCTURED_MODES)
    b.add_argument("--sandbox", default="local", help="where code runs: local (default), e2b, modal")
    b.add_argument("--isolation", default=None, choices=["bwrap", "none"])
    b.add_argument("--max-iterations", type=int, default=None, metavar="N",
                   help="test runs per task (default: the task's own, else 10)")
    b.add_argument("--max-tokens", type=int, default=None, metavar="N", help="tokens each run may use")
    b.add_argument("--max-cost", type=float, default=None, metavar="USD", help="estimated dollars each run may cost")
    b.add_argument("--prices", default=None, metavar="PATH", help="JSON price table (docs/models.md)")
    b.add_argument("--baseline", action="store_true",
                   help="single-shot: generate, test once, no repair (the loop's gain is measured against it)")
    b.add_argument("--concurrency", type=int, default=1, metavar="N", help="tasks run at once (default 1)")
    b.add_argument("--task", dest="tasks", action="append", default=None, metavar="NAME",
                   help="run only this task (repeatable)")
    b.add_argument("--out", default=None, metavar="DIR",
                   help="the bench's folder: results, outputs, checkpoints (default ./bench-SUITE-MODE); "
                   "the same folder again continues a stopped bench")
    b.add_argument("--db", default=None, help="checkpoint database (default: DIR/checkpoints.sqlite)")
    b.add_argument("--json", action="store_true", help="print the results (or the comparison) as JSON")
    b.add_argument("--to", default=None, metavar="SUITE_DIR", help="import-exercism: the suite folder to write")
    b.add_argument("--force", action="store_true", help="import-exercism: replace existing task folders")


def main(args: argparse.Namespace, console: Console) -> int:
    form = args.args[0] if args.args and args.args[0] in FORMS else None
    if form == "compare":
        return _compare(args)
    if form == "import-exercism":
        return _import(args, console)
    if form == "schema":
        print(json.dumps(published_schema(), indent=2))
        return 0
    if len(args.args) > 1:
        raise ConfigError(f"devlooper bench takes one suite folder, not {len(args.args)} arguments")
    try:
        return asyncio.run(_bench(args, console))
    except KeyboardInterrupt:
        console.print("bench stopped: run the same command again to continue it (finished tasks are kept)")
        raise


def _compare(args: argparse.Namespace) -> int:
    if len(args.args) != 3:
        raise ConfigError("usage: devlooper bench compare A.json B.json")
    result = compare(load_results(args.args[1]), load_results(args.args[2]))
    print(json.dumps(result.as_dict(), indent=2) if args.json else comparison_table(result))
    return 0


def _import(args: argparse.Namespace, console: Console) -> int:
    if len(args.args) != 2 or not args.to:
        raise ConfigError("usage: devlooper bench import-exercism TRACK_DIR --to SUITE_DIR")
    done = import_exercises(args.args[1], args.to, force=args.force)
    for item in done:
        console.print(f"{item.track:<10} {escape(item.name)} -> {escape(str(item.folder))}")
    console.print(f"{len(done)} task(s); run them with: [bold]devlooper bench {escape(args.to)} --model MODEL[/]")
    return 0


async def _bench(args: argparse.Namespace, console: Console) -> int:
    # Running tasks needs the graph, the model libraries and the sandboxes: imported here,
    # not when the parser is built (every devlooper command builds it).
    from ..models import load_chat_model  # noqa: PLC0415
    from ..sandboxes import sandbox_class  # noqa: PLC0415
    from .run import BenchSettings, run_bench, task_context  # noqa: PLC0415

    bundled = not args.args
    suite = load_suite(args.args[0] if args.args else bundled_suite(), args.tasks)
    model = args.model or (REPLAY if bundled else None)
    if model is None:
        raise ConfigError("name the model to measure with --model provider:model (or replay, for tasks with cassettes)")
    if args.max_iterations is not None and args.max_iterations < 1:
        raise ConfigError("--max-iterations must be at least 1")
    mode = "baseline" if args.baseline else "loop"
    settings = BenchSettings(
        model=model, out=Path(args.out or f"bench-{suite.name}-{mode}").expanduser().resolve(),
        sandbox=args.sandbox, isolation=args.isolation, base_url=args.base_url,
        structured_output=args.structured_output, max_iterations=args.max_iterations, max_tokens=args.max_tokens,
        max_cost=args.max_cost, prices=args.prices, concurrency=args.concurrency, baseline=args.baseline, db=args.db,
    )
    first = task_context(suite.tasks[0], settings)
    sandbox_class(first.sandbox).check_config(first)  # before any work: no bubblewrap, no key
    if model != REPLAY:
        load_chat_model(model, args.base_url)
    console.print(f"[bold]devlooper bench[/] · suite [cyan]{escape(suite.name)}[/] ({len(suite.tasks)} tasks) "
                  f"· {mode} · model [cyan]{escape(model)}[/] · sandbox [cyan]{settings.sandbox}[/] "
                  f"· concurrency {settings.concurrency} · {escape(str(settings.out))}", soft_wrap=True)

    def done(result: TaskResult) -> None:
        console.print(f"  {escape(result.name)}: {result.verdict} ({result.status or 'error'}, "
                      f"{result.iterations} iteration(s), {result.wall_seconds:.1f} s)")

    results = await run_bench(suite, settings, on_task=done)
    if args.json:
        print(results.model_dump_json(indent=2))
    else:
        print(table(results))
    console.print(f"results: {escape(str(settings.out / RESULTS_FILE))} · page: {escape(str(settings.out / PAGE_FILE))}")
    return 1 if results.totals.errors else 0
