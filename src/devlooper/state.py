"""Graph state: the source of truth for a run.

Files, environment layers, every test run, every action and every edit live
here and are checkpointed after each node; the large, growing channels store
only each step's writes (``folded``), so checkpoints grow linearly. A sandbox is only a cache of this
state and can be rebuilt from it at any time (resume, time travel, a switch of
backend). Values are plain JSON-able dicts so any checkpointer and the server
API can store them.

``typing_extensions.TypedDict`` (not ``typing``) is required: on Python 3.11
the server's schema endpoint cannot introspect ``typing.TypedDict``.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from langgraph.channels import DeltaChannel
from pydantic import Field
from typing_extensions import NotRequired, TypedDict

from . import budgets
from .bounded import clip
from .layers import Layer

Status = Literal["running", "passed", "gave_up", "stuck", "budget", "error"]


def merge_files(current: dict[str, str] | None, update: dict[str, str | None] | None) -> dict[str, str]:
    """Merge file updates into the tree; a ``None`` content deletes the path."""
    merged = dict(current or {})
    for path, content in (update or {}).items():
        if content is None:
            merged.pop(path, None)
        else:
            merged[path] = content
    return merged


def add_runs(current: list[TestRun] | None, update: list[TestRun] | None) -> list[TestRun]:
    """Append test runs; runs older than the newest ``FULL_OUTPUT_RUNS`` keep an excerpt
    of their output and of their failures. Every checkpoint stores the whole state, and
    only the newest runs' output and failures are read again (prompts, fingerprints);
    older runs are kept for their counts and a glimpse of what failed."""
    runs = [*(current or []), *(update or [])]
    for i in range(max(0, len(runs) - budgets.FULL_OUTPUT_RUNS)):
        runs[i] = _excerpt(runs[i])
    return runs


def _excerpt(run: TestRun) -> TestRun:
    # The room left for clip's marker keeps an excerpt from being clipped again.
    room = 100
    output, dropped = run["output"], run["dropped"]
    if len(output) > budgets.OLD_OUTPUT_CHARS + room:
        output, more = clip(output, budgets.OLD_OUTPUT_CHARS)
        dropped += more
    failures = run["failures"][: budgets.OLD_FAILURES_KEPT]
    if any(len(f["message"]) > budgets.OLD_FAILURE_CHARS + room for f in failures):
        failures = [{**f, "message": clip(f["message"], budgets.OLD_FAILURE_CHARS)[0]} for f in failures]
    if output is run["output"] and len(failures) == len(run["failures"]) and failures == run["failures"]:
        return run
    return {**run, "output": output, "dropped": dropped, "failures": failures}


def add_edits(current: list[FileEdit] | None, update: list[FileEdit] | None) -> list[FileEdit]:
    """Append edits; edits older than the newest iteration keep a head-and-tail excerpt
    of their diff (what a loop warning shows of them), their hashes and line counts."""
    edits = [*(current or []), *(update or [])]
    if not edits:
        return edits
    newest = max(e["iteration"] for e in edits)
    for i, edit in enumerate(edits):
        if edit["iteration"] < newest and len(edit["diff"]) > budgets.OLD_DIFF_CHARS + 100:
            edits[i] = {**edit, "diff": clip(edit["diff"], budgets.OLD_DIFF_CHARS)[0]}
    return edits


def folded(reducer: Callable[[Any, Any], Any]) -> DeltaChannel:
    """A channel whose checkpoints store only what each step wrote, not the whole value.

    Every checkpoint of a plain reducer channel holds the channel's whole value, so a
    run's checkpoint database grows with the square of its length (the file tree and
    the test runs again after every step). LangGraph's ``DeltaChannel`` stores the
    step's writes and rebuilds the value by folding them again when a thread is loaded
    (with a full snapshot every ``snapshot_frequency`` updates, so a load folds a
    bounded number of writes). ``reducer`` is applied to one write at a time, so
    folding a batch is the same as folding its writes one by one."""

    def fold(current: Any, writes: Sequence[Any]) -> Any:
        return functools.reduce(reducer, writes, current)

    fold.__name__ = f"folded_{reducer.__name__}"
    return DeltaChannel(fold, snapshot_frequency=50)


def add_counts(current: dict[str, float] | None, update: dict[str, float] | None) -> dict[str, float]:
    """Sum numeric counters key by key (token usage, seconds per node)."""
    merged = dict(current or {})
    for key, value in (update or {}).items():
        merged[key] = merged.get(key, 0) + value
    return merged


class ActionResult(TypedDict):
    """What happened when an action of a plan (or of generation) ran."""

    iteration: int
    kind: Literal["fix", "delete", "install", "command", "plan"]
    target: str
    ok: bool
    exit_code: int | None
    output: str
    duration: float


class FileEdit(TypedDict):
    """One change to one file, with the hashes that loop detection compares."""

    iteration: int
    path: str
    before: str | None  # sha256 of the old content; None when the file is new
    after: str | None  # sha256 of the new content; None when the file is deleted
    diff: str  # unified diff, clipped (budgets.MAX_DIFF_CHARS; older edits: OLD_DIFF_CHARS)
    reason: str
    added: NotRequired[int]  # lines the whole diff adds and removes (before any clipping)
    removed: NotRequired[int]


class TestFailure(TypedDict):
    name: str
    message: str  # clipped to a bounded excerpt
    # Hash of the whole message with what differs between runs of the same failure
    # normalised away, taken before clipping: where a clip cuts depends on the
    # message's length, which addresses and paths change. Missing in checkpoints
    # of older versions, where the clipped message stands in for it.
    signature: NotRequired[str]


class TestRun(TypedDict):
    iteration: int
    exit_code: int
    timed_out: bool
    output: str  # stdout and stderr, bounded (head and tail kept)
    dropped: int  # characters dropped from the middle of the output
    duration: float
    passed: int
    failed: int
    failures: list[TestFailure]


class Fingerprint(TypedDict):
    """What one test run looked like, reduced to hashes that loop detection compares.

    ``plan``, ``patch`` and ``steps`` describe the iteration that led to this
    run (the plan made after the previous run); they are empty for the first run.
    """

    iteration: int
    signature: str  # hash of the failing tests and their normalised errors
    workspace: str  # hash of every file's path and content
    layers: str  # hash of the environment layers, in order
    plan: str | None  # hash of the actions of the plan applied before this run
    patch: str | None  # hash of the file edits applied before this run
    steps: list[dict]  # installs and commands tried before this run: kind, target, ok, context
    # Hash of the workspace and layers the plan was applied to (those of the run
    # before); None for the first run. A plan is only a repeat on the same state.
    applied_to: NotRequired[str | None]
    exit_code: int
    passed: int
    failed: int


class Detection(TypedDict):
    """One loop found in the fingerprints: its kind, the iterations involved, in words."""

    kind: Literal["repeat", "cycle", "same_failure", "no_progress", "failed_retry"]
    iterations: list[int]
    detail: str


class LoopEvent(TypedDict):
    """One rung of the ladder taken: the model warned, a human asked, or the run stopped."""

    iteration: int
    rung: Literal["warned", "asked", "stopped"]
    detections: list[Detection]
    guidance: str | None  # what the human said (rung "asked")


class Best(TypedDict):
    """The iteration with the most passing tests so far, with what it takes to restore it
    (``loops.restore_best``): its files, each as its content only where it differs from
    the current file (``None``: the same as now), and its environment layers."""

    iteration: int
    passed: int
    failed: int
    files: dict[str, str | None]
    layers: list[Layer]


class Decision(TypedDict):
    """One answer at a pause (a person's) or of the command policy: what was decided, and
    the free-text guidance that came with it, which the next model calls see."""

    iteration: int
    moment: Literal["plan", "command", "stuck"]
    subject: str  # the plan's summary, or the command
    verdict: Literal["approved", "edited", "rejected", "refused"]
    by: Literal["person", "policy"]
    guidance: str | None


class InputState(TypedDict):
    """What a user gives: Studio shows exactly these fields as the input form."""

    prompt: Annotated[
        str,
        Field(description="What to build, in words: the program, its behaviour, and what its tests should check."),
    ]
    template: NotRequired[
        Annotated[
            str,
            Field(
                description="Environment template: python, react, rust, or the path of a user template "
                "(.toml file or folder). Default: DEVLOOPER_TEMPLATE on the server, else python."
            ),
        ]
    ]
    # Improve mode: the files of an existing project (path -> text) to start from instead
    # of generating one; its tests run first, then the loop carries out ``prompt``.
    project_files: NotRequired[
        Annotated[
            dict[str, str],
            Field(description="Improve mode: an existing project's files (path -> text) to start from."),
        ]
    ]


class OutputState(TypedDict):
    """What a user gets back."""

    status: Status
    reason: str
    iteration: int
    files: dict[str, str]
    report: dict
    # What the last step did, bounded (devlooper.events): a server streams updates
    # filtered to these keys, so this is what a client sees of each step.
    event: dict


class State(InputState):
    run_id: str  # keys the live sandbox of this run
    # The run's settings as it started (Context as JSON-able data, chat_model left out):
    # a resume over the server whose client sends no context continues with these.
    settings: dict
    # Improve mode: where the project came from and what loading it skipped (improve.Loaded).
    improve: dict
    decisions: Annotated[list[Decision], operator.add]  # every pause answered, every command policy refusal
    # Where generated code runs and how it is confined, as the run started:
    # {"backend": "local", "isolation": "bwrap" | "none"}, or isolation "remote" for e2b/modal.
    sandbox_settings: dict[str, Any]
    env_template: dict  # the resolved template (EnvTemplate as a dict): a run never depends on its file again
    status: Status
    reason: str
    iteration: int  # number of test runs so far
    project: dict  # the generation plan (models.ProjectPlan as a dict)
    files: Annotated[dict[str, str], folded(merge_files)]
    layers: Annotated[list[Layer], operator.add]
    test_runs: Annotated[list[TestRun], folded(add_runs)]
    diagnosis: str
    plans: Annotated[list[dict], folded(operator.add)]  # one DebugPlan (as a dict) per iteration
    edits: Annotated[list[FileEdit], folded(add_edits)]
    action_results: Annotated[list[ActionResult], folded(operator.add)]
    usage: Annotated[dict[str, float], add_counts]
    timings: Annotated[dict[str, float], add_counts]
    report: dict
    # Loop memory: one fingerprint per test run, the ladder's rungs, the best run so far.
    fingerprints: Annotated[list[Fingerprint], folded(operator.add)]
    loop_events: Annotated[list[LoopEvent], operator.add]
    best: Best
    event: dict  # what the last step did (devlooper.events); in the output schema, so servers stream it
