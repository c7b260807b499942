"""The five detectors, the ladder's decision and best-so-far, on hand-made fingerprints."""

from devlooper.loops import detect, improves, loop_reason, regression, still_stuck


def fp(iteration: int, *, sig="S", ws=None, layers="L0", plan=None, patch=None, steps=(), passed=1, failed=1,
       exit_code=1, on=None):
    """A fingerprint; ``on`` is what its plan was applied to (the state of the run before)."""
    return {
        "iteration": iteration, "signature": sig, "workspace": ws or f"W{iteration}", "layers": layers,
        "plan": plan, "patch": patch, "steps": list(steps), "exit_code": exit_code, "passed": passed, "failed": failed,
        "applied_to": on,
    }


def chain(*fps):
    """Fingerprints in a row, each plan applied to the workspace and layers of the run before, as in a real run."""
    out = []
    for f in fps:
        out.append({**f, "applied_to": f"{out[-1]['workspace']}|{out[-1]['layers']}" if out else None})
    return out


def kinds(fps, window=3):
    return sorted(d["kind"] for d in detect(fps, window))


def test_progress_is_never_flagged():
    fps = [fp(1, sig="A", passed=0, plan=None), fp(2, sig="B", passed=1, plan="p1"), fp(3, sig="C", passed=2, plan="p2"),
           fp(4, sig="D", passed=3, plan="p3")]
    for n in range(1, 5):
        assert detect(fps[:n]) == []


def test_green_is_never_a_loop():
    fps = [fp(1), fp(2, ws="W1", plan="p"), fp(3, ws="W1", plan="p", exit_code=0)]
    assert detect(fps) == []


def test_a_repeated_plan():
    # Plan p changed nothing the first time, and is applied again to the same code and environment.
    fps = chain(fp(1, sig="A", ws="A"), fp(2, sig="B", ws="A", plan="p", passed=2), fp(3, sig="C", plan="p", passed=3))
    [d] = detect(fps)
    assert d["kind"] == "repeat" and d["iterations"] == [1, 2]
    assert "plan of iteration 2 repeats the plan of iteration 1" in d["detail"]


def test_a_repeated_patch_with_other_words():
    fps = [fp(1, sig="A"), fp(2, sig="B", plan="p1", patch="e", passed=2, on="X"),
           fp(3, sig="C", plan="p2", patch="e", passed=3, on="X")]
    [d] = detect(fps)
    assert d["kind"] == "repeat" and "edits of iteration 2 repeat" in d["detail"]


def test_a_retry_after_the_environment_changed_is_not_a_repeat():
    # Plan p (say, a build command) fails; plan q installs what it lacked; p again then makes progress.
    fps = chain(fp(1, sig="A", ws="A", layers="L0", passed=1), fp(2, sig="B", ws="A", layers="L0", plan="p", passed=1),
                fp(3, sig="C", ws="A", layers="L1", plan="q", passed=1),
                fp(4, sig="D", ws="B", layers="L2", plan="p", passed=3))
    assert detect(fps) == []
    # The same retry after the code changed (plan q edited a file) is not a repeat either.
    code = chain(*fps[:2], fp(3, sig="C", ws="A2", plan="q", passed=1), fp(4, sig="D", ws="B", plan="p", passed=3))
    assert detect(code) == []
    # On the same code and environment (plan q changed nothing), it is one.
    same = chain(*fps[:2], fp(3, sig="C", ws="A", plan="q", passed=1), fp(4, sig="D", ws="B", plan="p", passed=3))
    [d] = detect(same)
    assert d["kind"] == "repeat" and d["iterations"] == [1, 3]


def test_a_return_to_an_earlier_state():
    a_b_a = [fp(1, sig="A", ws="A"), fp(2, sig="B", ws="B", plan="p1", passed=2), fp(3, sig="A2", ws="A", plan="p2", passed=3)]
    [d] = detect(a_b_a)
    assert d["kind"] == "cycle" and d["iterations"] == [1, 2, 3]
    longer = [fp(1, sig="1", ws="A"), fp(2, sig="2", ws="B", plan="a", passed=2), fp(3, sig="3", ws="C", plan="b", passed=3),
              fp(4, sig="4", ws="A", plan="c", passed=4)]
    assert [d["iterations"] for d in detect(longer)] == [[1, 2, 3, 4]]


def test_staying_put_or_changing_the_environment_is_not_a_cycle():
    stay = [fp(1, sig="A", ws="A"), fp(2, sig="B", ws="A", plan="p1", passed=2)]
    assert detect(stay) == []
    # Same files as run 1, but a package was installed since: a new state.
    env = [fp(1, sig="A", ws="A"), fp(2, sig="B", ws="B", plan="p1", passed=2),
           fp(3, sig="C", ws="A", layers="L1", plan="p2", passed=3)]
    assert detect(env) == []


def test_the_same_failure_k_times():
    fps = [fp(i, sig="S", ws=f"W{i}", plan=f"p{i}", passed=i) for i in range(1, 4)]
    [d] = detect(fps)
    assert d["kind"] == "same_failure" and d["iterations"] == [1, 2, 3] and "despite different patches" in d["detail"]
    assert detect(fps[:2]) == []
    assert kinds(fps, window=4) == []


def test_no_more_passing_tests_for_k_runs():
    fps = [fp(1, sig="a", passed=2), fp(2, sig="b", plan="1", passed=2), fp(3, sig="c", plan="2", passed=1),
           fp(4, sig="d", plan="3", passed=2)]
    assert detect(fps[:3]) == []  # runs 2-3 are two runs without progress, not three
    [d] = detect(fps)
    assert d["kind"] == "no_progress" and d["iterations"] == [2, 3, 4] and "best 2 passing" in d["detail"]
    improving = fps[:3] + [fp(4, sig="d", plan="3", passed=3)]
    assert detect(improving) == []
    # No counts at all (a runtime without a results parser): nothing to measure.
    blind = [fp(i, sig=str(i), plan=str(i), passed=0, failed=0) for i in range(1, 5)]
    assert detect(blind) == []
    # Nothing passed yet, a different error each time (one missing module after another).
    imports = [fp(i, sig=str(i), plan=str(i), passed=0, failed=1) for i in range(1, 5)]
    assert detect(imports) == []


def test_the_run_that_improved_is_not_counted_as_one_without_progress():
    # Run 2 passes more than run 1: the runs without progress are 3, 4 and 5, so K = 3 is reached at run 5.
    fps = [fp(i, sig=str(i), plan=str(i), passed=passed) for i, passed in enumerate([1, 2, 2, 2, 2], start=1)]
    assert detect(fps[:4]) == []
    [d] = detect(fps)
    assert d["kind"] == "no_progress" and d["iterations"] == [3, 4, 5] and "best 2 passing" in d["detail"]
    # A window of two: two runs in a row after the best, not one.
    assert detect(fps[:3], window=2) == []
    assert [d["iterations"] for d in detect(fps[:4], window=2)] == [[3, 4]]


def test_an_unchanged_retry_of_a_failed_install():
    bad = {"kind": "install", "target": "nope", "ok": False, "context": "c0"}
    fps = [fp(1, sig="a", passed=0), fp(2, sig="b", plan="p1", steps=[bad], passed=1), fp(3, sig="c", plan="p2", steps=[bad], passed=2)]
    [d] = detect(fps)
    assert d["kind"] == "failed_retry" and d["iterations"] == [1, 2] and "`nope` failed at iteration 1" in d["detail"]
    # The same install in a changed environment, or one that now works, is not a loop.
    moved = fps[:2] + [fp(3, sig="c", plan="p2", steps=[{**bad, "context": "c1"}], passed=2)]
    worked = fps[:2] + [fp(3, sig="c", plan="p2", steps=[{**bad, "ok": True}], passed=2)]
    assert detect(moved) == [] and detect(worked) == []


def _state(fps, events=()):
    return {"fingerprints": fps, "iteration": fps[-1]["iteration"], "loop_events": list(events)}


def test_still_stuck_needs_a_warning_at_the_previous_iteration():
    fps = [fp(i, sig="S", plan=f"p{i}", passed=1) for i in range(1, 5)]
    assert still_stuck(_state(fps[:3])) == []  # first detection: diagnose warns
    warned = {"iteration": 3, "rung": "warned", "detections": [], "guidance": None}
    assert [d["kind"] for d in still_stuck(_state(fps, [warned]))] == ["same_failure", "no_progress"]
    old = {**warned, "iteration": 1}
    assert still_stuck(_state(fps, [old])) == []  # a warning long ago was for another loop
    asked = {**warned, "rung": "asked", "guidance": "try X"}
    assert still_stuck(_state(fps, [asked]))


def test_loop_reason_names_the_loop_and_the_rungs():
    fps = [fp(i, sig="S", ws="W", plan="p" if i > 1 else None, passed=1) for i in range(1, 4)]
    events = [{"iteration": 2, "rung": "warned", "detections": [], "guidance": None}]
    text = loop_reason(3, detect(fps), events)
    assert text.startswith("stuck in a loop at run 3: the plan of iteration 2 repeats the plan of iteration 1")
    assert "warned at iteration 2" in text


def test_best_so_far():
    run = lambda passed, failed, code=1: {"passed": passed, "failed": failed, "exit_code": code}  # noqa: E731
    best = {"iteration": 1, "passed": 2, "failed": 1, "files": {}, "layers": []}
    assert improves(run(0, 0), None)
    assert improves(run(3, 1), best) and improves(run(2, 0), best) and improves(run(0, 0, code=0), best)
    assert not improves(run(2, 1), best) and not improves(run(1, 0), best)


def test_regression_is_named_with_the_best_run():
    runs = [{"iteration": 1, "passed": 3, "failed": 1}, {"iteration": 2, "passed": 1, "failed": 3}]
    state = {"test_runs": runs, "best": {"iteration": 1, "passed": 3, "failed": 1}}
    text = regression(state)
    assert "changes of iteration 1 made things worse: 1 tests pass now, 3 passed at run 1" in text
    assert "best run so far is run 1" in text
    assert regression({"test_runs": runs[:1], "best": state["best"]}) is None
