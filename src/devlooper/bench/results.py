"""A bench's results: the JSON file's schema, as pydantic models, and its totals.

The schema is published as ``schema.json`` next to this module (``devlooper bench
schema`` prints it); a unit test keeps the file equal to what these models generate.
Every figure a table shows is computed from the per-task entries, so a results file
can be re-read, totalled and compared without the bench that wrote it.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError

RESULTS_FILE = "results.json"
PAGE_FILE = "results.html"
DB_FILE = "checkpoints.sqlite"
REPLAY = "replay"  # --model replay: each task answers from its own cassette

SCHEMA_VERSION = 1
# accepted: the hidden tests (and the output's own) pass in a fresh sandbox.
# hidden_tests_fail: the run ended green on its own tests, the hidden ones catch it.
# failed: the run ended red and the acceptance check fails too.
# error: the run could not be carried out (a sandbox that did not start, a missing reply).
Verdict = Literal["accepted", "hidden_tests_fail", "failed", "error"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AcceptanceResult(Strict):
    passed: bool = Field(
        description="The template's test command, hidden tests included, exited 0, and every hidden test file ran."
    )
    exit_code: int | None = Field(description="Its exit code; null when the output's manifest did not install.")
    tests_passed: int = Field(ge=0)
    tests_failed: int = Field(ge=0)
    hidden_failures: list[str] = Field(description="Ids of the failing tests that come from the hidden files.")
    hidden_not_run: list[str] = Field(
        description="Hidden test files none of whose tests ran (skipped or deselected by the output)."
    )
    install_ok: bool = Field(description="The output's manifest installed in the fresh sandbox.")
    output: str = Field(description="The acceptance run's output, head and tail.")
    seconds: float = Field(ge=0)


class TaskResult(Strict):
    name: str
    template: str
    thread_id: str = Field(description="The run's checkpoint thread: `devlooper report THREAD --db DB` shows it.")
    verdict: Verdict
    status: str | None = Field(description="How the run ended: passed, gave_up, stuck, budget; null on error.")
    reason: str = Field(description="Why the run ended (or the error).")
    iterations: int = Field(ge=0, description="Test runs of the loop.")
    wall_seconds: float = Field(
        ge=0, description="Wall time of the run and its acceptance check, in the bench session that finished it."
    )
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    calls: int = Field(ge=0, description="Model calls.")
    cost_usd: float | None = Field(description="Estimated from the price table; null when the price is unknown.")
    acceptance: AcceptanceResult | None = Field(description="Null when the run raised before it finished.")


class Totals(Strict):
    tasks: int = Field(ge=0)
    accepted: int = Field(ge=0)
    pass_rate: float = Field(ge=0, le=1, description="accepted / tasks.")
    hidden_tests_fail: int = Field(ge=0)
    errors: int = Field(ge=0)
    iterations_mean: float = Field(ge=0)
    wall_seconds: float = Field(ge=0, description="Sum over tasks (runs overlap with --concurrency).")
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cost_usd: float | None = Field(description="Null when any task's cost is unknown.")
    endings: dict[str, int] = Field(description="How many runs ended with each status (or error).")


class BenchResults(Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    suite: str = Field(description="The suite's folder name.")
    suite_path: str
    mode: Literal["loop", "baseline"] = Field(description="baseline: one generation, tested once, no repair.")
    model: str = Field(description="provider:model, or replay (each task's own cassette).")
    sandbox: str
    max_iterations: int | None = Field(description="The bench's --max-iterations; null: each task's own or 10.")
    started_at: str
    finished_at: str | None = Field(description="Null while tasks are left to run (a stopped bench).")
    threads: dict[str, str] = Field(description="Task -> its run's thread id, written before the run starts.")
    tasks: list[TaskResult]
    totals: Totals


def totals_of(tasks: list[TaskResult]) -> Totals:
    n = len(tasks)
    costs = [t.cost_usd for t in tasks]
    return Totals(
        tasks=n,
        accepted=sum(t.verdict == "accepted" for t in tasks),
        pass_rate=round(sum(t.verdict == "accepted" for t in tasks) / n, 4) if n else 0.0,
        hidden_tests_fail=sum(t.verdict == "hidden_tests_fail" for t in tasks),
        errors=sum(t.verdict == "error" for t in tasks),
        iterations_mean=round(statistics.fmean([t.iterations for t in tasks]), 3) if n else 0.0,
        wall_seconds=round(sum(t.wall_seconds for t in tasks), 3),
        input_tokens=sum(t.input_tokens for t in tasks),
        output_tokens=sum(t.output_tokens for t in tasks),
        cost_usd=None if not n or any(c is None for c in costs) else round(sum(costs), 6),
        endings=dict(sorted(Counter(t.status or "error" for t in tasks).items())),
    )


def schema() -> dict:
    return BenchResults.model_json_schema()


SCHEMA_FILE = "schema.json"


def published_schema() -> dict:
    """The schema file shipped with the package (the documented one)."""
    return json.loads((resources.files("devlooper.bench") / SCHEMA_FILE).read_text(encoding="utf-8"))


def load_results(path: str | Path) -> BenchResults:
    path = Path(path).expanduser()
    try:
        return BenchResults.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"bench results not found: {path}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{path} is not a devlooper bench results file: {where}: {first['msg']}") from None


def save_results(path: Path, results: BenchResults) -> None:
    """Written whole, then renamed over the old file: a bench killed mid-write leaves the last one."""
    results.totals = totals_of(results.tasks)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(results.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
