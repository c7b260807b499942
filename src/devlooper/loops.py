"""Loop detection on fingerprints, the ladder's decisions, and the best run so far.

Everything here is a pure function of the state, so the router can call it
and tests can check it without a model or a sandbox. Five detectors look at
the newest fingerprint against the earlier ones:

1. ``repeat``: the plan (or the set of file edits) of an iteration is
   identical to an earlier one and was applied to the same code and the same
   environment (a retry after either changed is a new attempt).
2. ``cycle``: the code and environment are back to an earlier state
   (A -> B -> A, and longer cycles); staying put (A -> A) is not a cycle.
3. ``same_failure``: the same failure signature for K runs in a row.
4. ``no_progress``: K runs in a row none of which passes more tests than the
   best run before them (once at least one test has passed).
5. ``failed_retry``: an install or command that failed is tried again in an
   unchanged environment (and fails again).
"""

from __future__ import annotations

from .layers import Layer
from .state import Best, Detection, Fingerprint, LoopEvent, State, TestRun

DEFAULT_WINDOW = 3


def _span(first: int, last: int) -> str:
    return f"{first}-{last}" if last > first else str(first)


def _repeat(last: Fingerprint, earlier: list[Fingerprint]) -> Detection | None:
    n = last["iteration"] - 1  # the plan that led to this run was made at iteration n
    for fp in earlier:
        # Fingerprints of older checkpoints have no ``applied_to``: None matches None there.
        if fp.get("applied_to") != last.get("applied_to"):
            continue  # applied to other code or another environment: a new attempt
        if last["plan"] and fp["plan"] == last["plan"]:
            m = fp["iteration"] - 1
            return Detection(kind="repeat", iterations=[m, n], detail=f"the plan of iteration {n} repeats the plan of iteration {m}")
        if last["patch"] and fp["patch"] == last["patch"]:
            m = fp["iteration"] - 1
            return Detection(kind="repeat", iterations=[m, n], detail=f"the edits of iteration {n} repeat the edits of iteration {m}")
    return None


def _cycle(last: Fingerprint, earlier: list[Fingerprint]) -> Detection | None:
    key = lambda fp: (fp["workspace"], fp["layers"])  # noqa: E731
    if not earlier or key(earlier[-1]) == key(last):
        return None  # nothing changed since the previous run: not a return
    for fp in reversed(earlier[:-1]):
        if key(fp) == key(last):
            its = list(range(fp["iteration"], last["iteration"] + 1))
            path = " -> ".join(str(i) for i in its)
            return Detection(
                kind="cycle",
                iterations=its,
                detail=f"the code at run {last['iteration']} is back to its state at run {fp['iteration']} (runs {path})",
            )
    return None


def _same_failure(fps: list[Fingerprint], window: int) -> Detection | None:
    recent = fps[-window:]
    if len(recent) < window or len({fp["signature"] for fp in recent}) != 1:
        return None
    its = [fp["iteration"] for fp in recent]
    changed = len({fp["workspace"] for fp in recent}) > 1
    return Detection(
        kind="same_failure",
        iterations=its,
        detail=f"the same failure for {window} runs in a row (runs {_span(its[0], its[-1])})"
        + (" despite different patches" if changed else " and the code did not change"),
    )


def _no_progress(fps: list[Fingerprint], window: int) -> Detection | None:
    # The K runs compared are the last K; the best is taken over the runs before
    # them only, so the run that set it is never counted as one without progress.
    if len(fps) <= window or window < 2:
        return None
    recent, before = fps[-window:], fps[:-window]
    if all(fp["passed"] == 0 and fp["failed"] == 0 for fp in recent):
        return None  # no counts were parsed: nothing to measure progress by
    base = max(fp["passed"] for fp in before)
    if base == 0:
        # Nothing has passed yet: a run that gets from one import error to the
        # next is progress this count cannot see. Repeats and cycles still can.
        return None
    if any(fp["passed"] > base for fp in recent):
        return None
    its = [fp["iteration"] for fp in recent]
    return Detection(
        kind="no_progress",
        iterations=its,
        detail=f"no more tests passed for {window} runs in a row (runs {_span(its[0], its[-1])}; best {base} passing)",
    )


def _failed_retry(last: Fingerprint, earlier: list[Fingerprint]) -> Detection | None:
    n = last["iteration"] - 1
    for step in last["steps"]:
        if step["ok"]:
            continue  # an unchanged retry that worked was a flake, not a loop
        for fp in earlier:
            for old in fp["steps"]:
                same = (old["kind"], old["target"], old["context"]) == (step["kind"], step["target"], step["context"])
                if same and not old["ok"]:
                    m = fp["iteration"] - 1
                    return Detection(
                        kind="failed_retry",
                        iterations=[m, n],
                        detail=f"{step['kind']} `{step['target']}` failed at iteration {m} and was tried again "
                        f"unchanged at iteration {n}",
                    )
    return None


def detect(fingerprints: list[Fingerprint], window: int = DEFAULT_WINDOW) -> list[Detection]:
    """Loops visible at the newest fingerprint (none once the tests pass)."""
    if not fingerprints or fingerprints[-1]["exit_code"] == 0:
        return []
    window = max(2, window)  # a window of one would call every red run a loop
    last, earlier = fingerprints[-1], fingerprints[:-1]
    found = [
        _repeat(last, earlier),
        _cycle(last, earlier),
        _same_failure(fingerprints, window),
        _no_progress(fingerprints, window),
        _failed_retry(last, earlier),
    ]
    return [d for d in found if d is not None]


def still_stuck(state: State, window: int = DEFAULT_WINDOW) -> list[Detection]:
    """Loops at this run when the previous iteration already took a rung of the ladder.

    A first detection only warns the model (diagnose does that); a detection
    right after a warning or a human's guidance means the warning did not help.
    """
    detections = detect(state.get("fingerprints", []), window)
    if not detections:
        return []
    previous = state["iteration"] - 1
    handled = any(e["iteration"] == previous and e["rung"] in ("warned", "asked") for e in state.get("loop_events", []))
    return detections if handled else []


def events_at(state: State, iteration: int) -> list[LoopEvent]:
    return [e for e in state.get("loop_events", []) if e["iteration"] == iteration]


def loop_reason(iteration: int, detections: list[Detection], events: list[LoopEvent]) -> str:
    """One sentence for the report: which loop, which iterations, what was tried against it."""
    warned = sorted({e["iteration"] for e in events if e["rung"] == "warned"})
    asked = sorted({e["iteration"] for e in events if e["rung"] == "asked"})
    tried = []
    if warned:
        tried.append(f"the model was warned at iteration {', '.join(map(str, warned))}")
    if asked:
        tried.append(f"a human gave guidance at iteration {', '.join(map(str, asked))}")
    return f"stuck in a loop at run {iteration}: " + "; ".join(d["detail"] for d in detections) + (
        f" ({'; '.join(tried)})" if tried else ""
    )


# --- best so far -------------------------------------------------------------
def improves(run: TestRun, best: Best | None) -> bool:
    """More passing tests, or as many with fewer failing, than the best so far."""
    if not best:
        return True
    if run["exit_code"] == 0:
        return True
    return (run["passed"], -run["failed"]) > (best["passed"], -best["failed"])


def best_of(run: TestRun, files: dict[str, str], layers: list[Layer]) -> Best:
    """The best run, taken on the state it ran against: its files are the current ones."""
    return Best(
        iteration=run["iteration"], passed=run["passed"], failed=run["failed"],
        files=dict.fromkeys(files), layers=list(layers),
    )


def track_best(best: Best, before: dict[str, str], changes: dict[str, str | None]) -> Best:
    """``best`` after ``changes`` are applied to the current files ``before``.

    The best run holds a file's content only where it differs from the current
    file (``None``: the same as now), so a checkpoint stores the project once,
    not once more per improvement. A file about to change is copied into ``best``
    first; one that changes back to the best's content is dropped again.
    Every node that changes files while a best run exists calls this.
    """
    kept = dict(best["files"])
    for path, new in changes.items():
        if path not in kept:
            continue  # not a file of the best run: restoring it leaves it out
        mine = before.get(path) if kept[path] is None else kept[path]
        kept[path] = None if new is not None and new == mine else mine
    return Best(**{**best, "files": kept})


def restore_best(state: State) -> tuple[dict[str, str], list[Layer]]:
    """The files and environment layers of the best run so far."""
    best = state["best"]
    current = state.get("files", {})
    files = {path: current[path] if content is None else content for path, content in best["files"].items()}
    return files, list(best["layers"])


def regression(state: State) -> str | None:
    """Say so when the last iteration made things worse, naming the best run to go back to."""
    runs = state.get("test_runs", [])
    best = state.get("best")
    if len(runs) < 2 or not best:
        return None
    last, previous = runs[-1], runs[-2]
    notes = []
    if last["passed"] < previous["passed"]:
        notes.append(
            f"The changes of iteration {previous['iteration']} made things worse: {last['passed']} tests pass now, "
            f"{previous['passed']} passed at run {previous['iteration']}."
        )
    if best["iteration"] != last["iteration"] and last["passed"] < best["passed"]:
        notes.append(
            f"The best run so far is run {best['iteration']} ({best['passed']} passed, {best['failed']} failed); "
            "consider undoing the changes made since then."
        )
    return " ".join(notes) or None
