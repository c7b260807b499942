from devlooper.fingerprint import failure_signature, fingerprint, layers_hash, normalise, plan_hash, workspace_hash


def _run(message: str = "", *, exit_code: int = 1, failures=None, output: str = "", iteration: int = 1) -> dict:
    if failures is None:
        failures = [{"name": "tests/test_a.py::test_x", "message": message}] if message else []
    return {"iteration": iteration, "exit_code": exit_code, "timed_out": False, "output": output, "dropped": 0,
            "duration": 0.1, "passed": 1, "failed": len(failures), "failures": failures}


def test_normalise_removes_what_changes_between_runs_of_the_same_failure():
    a = 'AssertionError at 0x7f3a2c1b at line 12 in /tmp/devlooper-ws-x1/pkg/core.py:12 (0.31s) 12:03:04'
    b = 'AssertionError at 0x55aa0001 at line 40 in /tmp/devlooper-ws-9q/pkg/core.py:40:7 (1.02s) 18:59:00'
    assert normalise(a) == normalise(b)
    assert "0x7f3a2c1b" not in normalise(a) and "devlooper-ws" not in normalise(a)


def test_normalise_keeps_what_makes_failures_different():
    assert normalise("assert 6 == 5") != normalise("assert -1 == 5")
    assert normalise("KeyError: 'name'") != normalise("KeyError: 'age'")
    assert normalise("ValueError: bad") != normalise("TypeError: bad")


def test_signature_ignores_noise_and_order_but_not_the_failing_tests():
    one = _run(failures=[{"name": "t::a", "message": "E at 0x1"}, {"name": "t::b", "message": "line 3"}])
    same = _run(failures=[{"name": "t::b", "message": "line 9"}, {"name": "t::a", "message": "E at 0x2"}])
    other = _run(failures=[{"name": "t::a", "message": "E at 0x1"}])
    assert failure_signature(one) == failure_signature(same)
    assert failure_signature(one) != failure_signature(other)


def test_signature_falls_back_to_the_output_tail_when_nothing_was_parsed():
    crash = "Traceback (most recent call last):\n  File \"/tmp/ws-1/main.py\", line 3\nSyntaxError: invalid syntax\n"
    again = crash.replace("ws-1", "ws-2").replace("line 3", "line 4")
    assert failure_signature(_run(output=crash)) == failure_signature(_run(output=again))
    assert failure_signature(_run(output=crash)) != failure_signature(_run(output="NameError: x"))
    assert failure_signature(_run(exit_code=0, output="1 passed in 0.1s")) == failure_signature(_run(exit_code=0))


def test_hashes_follow_content_and_order():
    assert workspace_hash({"a": "1", "b": "2"}) == workspace_hash({"b": "2", "a": "1"})
    assert workspace_hash({"a": "1"}) != workspace_hash({"a": "2"})
    x = {"kind": "install", "spec": "numpy", "iteration": 1}
    y = {"kind": "command", "spec": "make", "iteration": 2}
    assert layers_hash([x, y]) != layers_hash([y, x])
    assert layers_hash([x]) == layers_hash([{**x, "iteration": 5}])  # when it was added does not matter


def test_plan_hash_compares_actions_not_wording():
    action = {"kind": "fix_file", "path": "a.py", "instructions": "use +", "packages": [], "command": None}
    first = {"iteration": 1, "summary": "fix add", "actions": [action]}
    reworded = {"iteration": 4, "summary": "make add add", "actions": [{k: v for k, v in action.items() if v}]}
    assert plan_hash(first) == plan_hash(reworded)
    assert plan_hash({"summary": "x", "actions": [{**action, "instructions": "use -"}]}) != plan_hash(first)
    assert plan_hash({"summary": "nothing", "actions": []}) is None


def test_fingerprint_describes_the_iteration_that_led_to_the_run():
    state = {
        "files": {"a.py": "x = 1\n"},
        "layers": [{"kind": "install", "spec": "six", "iteration": 0}],
        "plans": [{"iteration": 1, "summary": "s", "actions": [{"kind": "install", "packages": ["nope"]}]}],
        "edits": [{"iteration": 1, "path": "a.py", "before": "h1", "after": "h2", "diff": "", "reason": ""}],
        "action_results": [
            {"iteration": 1, "kind": "install", "target": "nope", "ok": False, "exit_code": 1, "output": "", "duration": 0},
            {"iteration": 1, "kind": "fix", "target": "a.py", "ok": True, "exit_code": None, "output": "", "duration": 0},
        ],
    }
    fp = fingerprint(state, _run("boom", iteration=2))
    assert fp["iteration"] == 2 and fp["plan"] and fp["patch"]
    assert [(s["kind"], s["target"], s["ok"]) for s in fp["steps"]] == [("install", "nope", False)]
    first = fingerprint(state, _run("boom", iteration=1))
    assert first["plan"] is None and first["patch"] is None and first["steps"] == []


def _junit(message: str) -> str:
    from xml.sax.saxutils import quoteattr

    return (f'<testsuite><testcase classname="tests.test_a" name="test_x" file="tests/test_a.py">'
            f"<failure message={quoteattr(message)}/></testcase></testsuite>")


def test_a_long_failure_is_normalised_before_it_is_clipped():
    # The same failure twice, its address a different length each time and cut by the clip of the message.
    from devlooper.results import MESSAGE_LIMIT, parse_junit

    def message(address: str) -> str:
        return "AssertionError: " + "x" * MESSAGE_LIMIT + f" at {address} " + "y" * (MESSAGE_LIMIT // 2 - 8)

    first, again = (parse_junit(_junit(message(a))).failures for a in ("0x7f3a2c1b5e60", "0x55aa0001"))
    assert first[0]["message"] != again[0]["message"]  # clipped differently...
    runs = [_run(failures=f) for f in (first, again)]
    assert failure_signature(runs[0]) == failure_signature(runs[1])  # ...the same failure
    other = parse_junit(_junit(message("0x1").replace("y", "z"))).failures
    assert failure_signature(_run(failures=other)) != failure_signature(runs[0])


def test_a_clipped_output_tail_does_not_depend_on_how_much_was_dropped():
    from devlooper.bounded import clip

    def output(address: str) -> str:
        return clip(f"collecting at {address} " + "." * 70_000 + "\nE   SyntaxError: boom\n", 64_000)[0]

    first, again = output("0x7f3a2c1b5e60"), output("0x1")
    assert first != again
    assert failure_signature(_run(output=first)) == failure_signature(_run(output=again))
    assert failure_signature(_run(output=first)) != failure_signature(_run(output=first.replace("boom", "bang")))


def test_a_sandbox_directory_outside_tmp_is_normalised():
    # A resumed run gets a new sandbox directory; with TMPDIR elsewhere it is not under /tmp.
    a = "ImportError while importing /work/scratch/devlooper-3f2a9c1b-k2j4h5g6/workspace/tests/test_a.py"
    b = "ImportError while importing /work/scratch/devlooper-3f2a9c1b-p9q8r7s6/workspace/tests/test_a.py"
    assert normalise(a) == normalise(b)
    assert "devlooper-3f2a9c1b" not in normalise(a)


def test_a_plan_is_fingerprinted_with_the_state_it_was_applied_to():
    state = {"files": {"a.py": "x = 2\n"}, "layers": [],
             "plans": [{"iteration": 1, "summary": "s", "actions": [{"kind": "command", "command": "make"}]}]}
    first = fingerprint(state, _run("boom", iteration=1))
    assert first["applied_to"] is None
    before = {"iteration": 1, "workspace": "W1", "layers": "L1"}
    moved = {"iteration": 1, "workspace": "W1", "layers": "L2"}
    fp = fingerprint({**state, "fingerprints": [before]}, _run("boom", iteration=2))
    assert fp["applied_to"] == fingerprint({**state, "fingerprints": [before]}, _run("bang", iteration=2))["applied_to"]
    assert fp["applied_to"] != fingerprint({**state, "fingerprints": [moved]}, _run("boom", iteration=2))["applied_to"]


def test_an_iteration_that_creates_and_deletes_one_path_has_a_fingerprint():
    from devlooper.fingerprint import fingerprint

    edits = [
        {"iteration": 1, "path": "gen.py", "before": None, "after": "aa", "diff": "", "reason": "fix"},
        {"iteration": 1, "path": "gen.py", "before": "aa", "after": None, "diff": "", "reason": "delete"},
    ]
    state = {"files": {}, "layers": [], "plans": [], "edits": edits, "action_results": [], "fingerprints": []}
    run = {"iteration": 2, "exit_code": 1, "timed_out": False, "output": "x", "passed": 0, "failed": 1, "failures": []}
    assert fingerprint(state, run)["patch"]
