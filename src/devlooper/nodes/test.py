"""test: run the template's test command in the sandbox; the exit code is data."""

from __future__ import annotations

from langgraph.runtime import Runtime

from ..bounded import clip
from ..context import Context
from ..fingerprint import fingerprint
from ..loops import best_of, improves
from ..results import parse_results
from ..sandboxes.base import Sandbox
from ..state import State, TestRun
from .common import context_of, sandbox_of, template_of, timed

# Output kept in the state per run; the prompt clips further (Context.output_limit).
STORED_OUTPUT = 64_000


@timed("test")
async def test(state: State, runtime: Runtime[Context]) -> dict:
    ctx = context_of(runtime)
    template = template_of(state, ctx)
    box = await sandbox_of(state, ctx)
    if template.results_file:  # a report left by an earlier run must not be read as this one's
        await box.delete_file(template.results_file)
    result = await box.exec(template.test_command, timeout=ctx.test_timeout)
    output, dropped = clip(result.output, STORED_OUTPUT)
    report, note = await _report(box, template.results_file)
    parsed = parse_results(template, result.output, report)
    output += note
    # The state is the truth: what the tests changed in the project (a rewritten fixture, a
    # snapshot) is undone, so the state's files stay exactly what this run tested.
    await box.sync_files(state.get("files", {}))
    iteration = state.get("iteration", 0) + 1
    run = TestRun(
        iteration=iteration,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        output=output,
        dropped=dropped + result.dropped,
        duration=round(result.duration, 3),
        passed=parsed.passed,
        failed=parsed.failed,
        failures=parsed.failures,
    )
    update: dict = {"iteration": iteration, "test_runs": [run], "fingerprints": [fingerprint(state, run)]}
    if improves(run, state.get("best")):
        update["best"] = best_of(run, state.get("files", {}), state.get("layers", []))
    return update


async def _report(box: Sandbox, path: str | None) -> tuple[str | None, str]:
    """The results file the test command wrote (None when it wrote none: it crashed first),
    and a note for the model when it wrote one that cannot be read back: a link, not a
    regular file, or larger than the sandbox reads (the run then counts as unparsed)."""
    if not path:
        return None, ""
    try:
        return await box.read_file(path), ""
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError) as exc:  # workspace.TooLarge is a ValueError
        return None, f"\n[devlooper: the results file {path} was not read: {exc}]"
