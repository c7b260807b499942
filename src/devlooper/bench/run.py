"""Running a suite: each task a normal checkpointed run, then its acceptance check.

A bench lives in one folder (``--out``): ``results.json`` (rewritten after every
task), the checkpoint database (unless ``--db`` names another), and each task's
output under ``outputs/TASK``. Each task's thread id is written to the results
before its run starts, so running the same bench again after a crash or a kill
skips the tasks that finished, continues the ones that were cut off from their
last checkpoint (``runner.resume``) and starts the rest. A task whose run raised
(an ``error``) is tried again.

``baseline`` runs each task single-shot: one generation, tested once, no repair
(``max_iterations=1``), the figure to hold the loop's pass rate against.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..context import Context
from ..errors import ConfigError
from ..models import REPLAY_PREFIX
from ..runner import open_saver, resume, run
from ..templates.base import EnvTemplate
from ..templates import get_template
from .acceptance import run_acceptance
from .render import html
from .results import DB_FILE, PAGE_FILE, REPLAY, RESULTS_FILE, AcceptanceResult, BenchResults, TaskResult, load_results, save_results, totals_of
from .suite import Suite, Task

DEFAULT_ITERATIONS = 10


@dataclass
class BenchSettings:
    model: str
    out: Path
    sandbox: str = "local"
    isolation: str | None = None
    base_url: str | None = None
    structured_output: str | None = None
    max_iterations: int | None = None  # None: each task's own, else DEFAULT_ITERATIONS
    max_tokens: int | None = None
    max_cost: float | None = None
    prices: str | None = None
    concurrency: int = 1
    baseline: bool = False
    db: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more Context fields (tests, embedders)

    @property
    def mode(self) -> str:
        return "baseline" if self.baseline else "loop"

    def database(self) -> str:
        return self.db or str(self.out / DB_FILE)


def task_context(task: Task, settings: BenchSettings) -> Context:
    """The context of one task's run: the bench's settings, the task's template and limit."""
    if settings.model == REPLAY:
        if task.cassette is None:
            raise ConfigError(f"task {task.name} has no cassette.json; --model replay needs one per task")
        model = f"{REPLAY_PREFIX}{task.cassette}"
    else:
        model = settings.model
    iterations = 1 if settings.baseline else settings.max_iterations or task.max_iterations or DEFAULT_ITERATIONS
    given: dict[str, Any] = {
        "model": model, "sandbox": settings.sandbox, "isolation": settings.isolation, "base_url": settings.base_url,
        "structured_output": settings.structured_output, "max_tokens": settings.max_tokens,
        "max_cost": settings.max_cost, "prices": settings.prices, "template": task.template,
        "max_iterations": iterations, "output_dir": str(settings.out / "outputs" / task.name),
        # Nobody is there to answer: a bench never pauses, and no command waits for approval.
        "interactive": False, "commands": "allow", **settings.extra,
    }
    return Context(**{k: v for k, v in given.items() if v is not None})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _open(suite: Suite, settings: BenchSettings) -> BenchResults:
    """The bench's results so far: the folder's, when it holds this same bench; else new."""
    path = settings.out / RESULTS_FILE
    if path.is_file():
        earlier = load_results(path)
        mine = (str(suite.folder), settings.mode, settings.model, settings.sandbox, settings.max_iterations)
        theirs = (earlier.suite_path, earlier.mode, earlier.model, earlier.sandbox, earlier.max_iterations)
        if mine != theirs:
            raise ConfigError(
                f"{settings.out} holds another bench (suite, mode, model, sandbox or --max-iterations differ); "
                "choose another --out to start a new one"
            )
        return earlier
    settings.out.mkdir(parents=True, exist_ok=True)
    return BenchResults(
        suite=suite.name, suite_path=str(suite.folder), mode=settings.mode, model=settings.model,
        sandbox=settings.sandbox, max_iterations=settings.max_iterations, started_at=_now(), finished_at=None,
        threads={}, tasks=[], totals=totals_of([]),
    )


def _save(settings: BenchSettings, results: BenchResults) -> None:
    """results.json, then the page from it: both always show every task finished so far."""
    save_results(settings.out / RESULTS_FILE, results)
    page = settings.out / PAGE_FILE
    tmp = page.with_suffix(".html.tmp")
    tmp.write_text(html(results), encoding="utf-8")
    tmp.replace(page)


async def _thread_exists(db: str, thread_id: str) -> bool:
    async with open_saver(db) as saver:
        return await saver.aget_tuple({"configurable": {"thread_id": thread_id}}) is not None


def _verdict(status: str | None, accepted: bool) -> str:
    if accepted:
        return "accepted"
    return "hidden_tests_fail" if status == "passed" else "failed"


async def run_task(task: Task, settings: BenchSettings, thread_id: str) -> TaskResult:
    """One task: its run (new, or continued from its checkpoints), then its acceptance check."""
    ctx = task_context(task, settings)
    started = time.monotonic()
    db = settings.database()
    try:
        if await _thread_exists(db, thread_id):
            final = await resume(thread_id, db=db)
        else:
            # The bench owns this folder: what a run cut off before its first checkpoint left goes.
            shutil.rmtree(ctx.output_dir, ignore_errors=True)
            final = await run(task.prompt, ctx, template=task.template, thread_id=thread_id, db=db,
                              project_files=task.project)
        if final.get("interrupt") is not None:
            raise ConfigError("the run paused for a person; a bench runs unattended")
        template = EnvTemplate.model_validate(final["env_template"]) if final.get("env_template") \
            else get_template(task.template)
        files = {p: t for p, t in (final.get("files") or {}).items() if t is not None}
        checked = await run_acceptance(
            files, task.hidden, template, backend=ctx.sandbox, isolation=ctx.isolation,
            install_timeout=ctx.install_timeout, test_timeout=ctx.test_timeout,
        )
    except Exception as exc:  # the run could not be carried out: an error, tried again next time
        return TaskResult(
            name=task.name, template=task.template, thread_id=thread_id, verdict="error", status=None,
            reason=f"{type(exc).__name__}: {exc}"[:2000], iterations=0,
            wall_seconds=round(time.monotonic() - started, 3), input_tokens=0, output_tokens=0, calls=0,
            cost_usd=None, acceptance=None,
        )
    usage = (final.get("report") or {}).get("usage") or {}
    return TaskResult(
        name=task.name, template=final.get("template") or task.template, thread_id=thread_id,
        verdict=_verdict(final.get("status"), checked.passed), status=final.get("status"),
        reason=final.get("reason") or "", iterations=final.get("iteration", 0),
        wall_seconds=round(time.monotonic() - started, 3), input_tokens=int(usage.get("input_tokens", 0)),
        output_tokens=int(usage.get("output_tokens", 0)), calls=int(usage.get("calls", 0)),
        cost_usd=usage.get("cost_usd"), acceptance=AcceptanceResult(**checked.as_dict()),
    )


async def run_bench(
    suite: Suite, settings: BenchSettings, on_task: Callable[[TaskResult], None] | None = None
) -> BenchResults:
    """Run every task not finished yet, ``settings.concurrency`` at once; the results file
    is rewritten after each one, and returned complete."""
    if settings.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    for task in suite.tasks:
        task_context(task, settings)  # a task that cannot run (no cassette) fails the bench before any work
    results = _open(suite, settings)
    done = {t.name for t in results.tasks if t.verdict != "error"}
    todo = [t for t in suite.tasks if t.name not in done]
    for task in todo:
        results.threads.setdefault(task.name, uuid.uuid4().hex)
    results.finished_at = None
    _save(settings, results)
    # The database's tables and its WAL mode are set up once, here: runs that start
    # together would otherwise each set them up at the same moment, on the same file.
    async with open_saver(settings.database()):
        pass
    lock = asyncio.Lock()
    limit = asyncio.Semaphore(settings.concurrency)

    async def one(task: Task) -> None:
        async with limit:
            result = await run_task(task, settings, results.threads[task.name])
        async with lock:
            results.tasks = [t for t in results.tasks if t.name != task.name] + [result]
            _save(settings, results)
        if on_task:
            on_task(result)

    await asyncio.gather(*(one(task) for task in todo))
    order = {t.name: i for i, t in enumerate(suite.tasks)}
    results.tasks.sort(key=lambda t: order.get(t.name, len(order)))
    results.finished_at = _now()
    _save(settings, results)
    return results
