"""cargo test's output read into results, checked against real output.

The fixtures are what the rust template's test command printed in the local
sandbox (cargo 1.95): one crate with unit tests, two integration test files
and doc-tests, in passing, failing, crashing and non-compiling versions, and a
Cargo.toml naming a crate that was never installed.
"""

from __future__ import annotations

from pathlib import Path

from devlooper.fingerprint import failure_signature
from devlooper.results import parse_cargo, parse_results
from devlooper.templates import get_template

FIXTURES = Path(__file__).parent / "fixtures" / "cargo"


def read(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text()


def by_name(output: str) -> dict[str, str]:
    return {f["name"]: f["message"] for f in parse_cargo(output).failures}


def test_passing_counts_every_binary_and_skips_ignored():
    results = parse_cargo(read("passing"))
    # unit tests 4 (+1 ignored), tests/more.rs 2, tests/other.rs 1, doc-tests 2
    assert (results.passed, results.failed, results.failures, results.parsed) == (9, 0, [], True)


def test_failures_are_named_by_binary_with_their_panic_messages():
    results = parse_cargo(read("failing"))
    assert (results.passed, results.failed) == (4, 5)
    failures = by_name(read("failing"))
    assert list(failures) == [
        "src/lib.rs::tests::panics",
        "src/lib.rs::tests::should_but_does_not",
        "src/lib.rs::tests::wrong",
        "tests/more.rs::wrong",  # same test name as in src/lib.rs: the binary tells them apart
        "src/lib.rs - add (line 7)",  # a doc-test's name already names its file
    ]
    assert failures["src/lib.rs::tests::panics"] == (
        "thread 'tests::panics' panicked at src/lib.rs:31:9:\nboom\nsecond line"
    )
    wrong = failures["src/lib.rs::tests::wrong"]
    assert wrong.startswith("some stdout line")  # what the test printed is part of its failure
    assert "assertion `left == right` failed: two and two\n  left: 4\n right: 5" in wrong
    assert failures["src/lib.rs::tests::should_but_does_not"] == (
        "note: test did not panic as expected at src/lib.rs:36:8"
    )
    assert failures["tests/more.rs::wrong"].endswith("assertion failed: app::add(1, 1) == 3")
    assert "left: 3\n right: 4" in failures["src/lib.rs - add (line 7)"]


def test_messages_drop_what_changes_between_runs():
    output = read("failing")
    assert "thread 'tests::wrong' (125) panicked" in output
    messages = "\n".join(by_name(output).values())
    assert "(125)" not in messages and "RUST_BACKTRACE" not in messages
    # the same failure under other thread ids has the same signature: loop detection sees a repeat
    again = output.replace("(125)", "(907)").replace("(123)", "(4)").replace("(128)", "(77)")
    run = {"exit_code": 101, "timed_out": False, "output": output}
    assert failure_signature({**run, "failures": parse_cargo(output).failures}) == failure_signature(
        {**run, "output": again, "failures": parse_cargo(again).failures}
    )


def test_a_backtrace_is_left_out_of_the_message():
    output = read("failing").replace(
        "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
        "stack backtrace:\n   0: __rustc::rust_begin_unwind\n             at /rustc/x/panicking.rs:689:5\n"
        "note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.\n",
        1,
    )
    assert by_name(output)["src/lib.rs::tests::panics"].endswith("boom\nsecond line")


def test_a_compile_error_is_one_failure_at_its_file():
    results = parse_cargo(read("compile_error"))
    assert (results.passed, results.failed, results.parsed) == (0, 1, True)
    [failure] = results.failures
    assert failure["name"] == "(build) src/lib.rs"
    assert failure["message"].startswith("error[E0277]: cannot add `&str` to `i32`\n  --> src/lib.rs:11:7")
    assert "could not compile" not in failure["message"]  # cargo's summary line is not the problem


def test_a_compile_error_in_an_integration_test_stops_every_binary():
    results = parse_cargo(read("test_compile_error"))
    assert (results.passed, results.failed) == (0, 1)
    [failure] = results.failures
    assert failure["name"] == "(build) tests/other.rs"
    assert "expected `i32`, found `&str`" in failure["message"]


def test_a_binary_that_crashed_is_a_failure_and_the_others_still_count():
    results = parse_cargo(read("crash"))
    assert (results.passed, results.failed) == (6, 1)
    [failure] = results.failures
    assert failure["name"] == "tests/other.rs"
    assert "SIGABRT" in failure["message"]


def test_a_manifest_error_is_reported_with_its_cause():
    output = (
        "error: failed to parse manifest at `/workspace/Cargo.toml`\n\nCaused by:\n"
        "  TOML parse error at line 3, column 1\n"
    )
    results = parse_cargo(output)
    assert results.failed == 1
    assert results.failures[0]["name"] == "(build) cargo"
    assert "Caused by:\n  TOML parse error" in results.failures[0]["message"]


def test_a_dependency_never_installed_is_reported_as_cargo_says_it():
    # Cargo.toml names a crate the environment never fetched; tests run offline.
    [failure] = parse_cargo(read("undeclared_crate")).failures
    assert failure["name"] == "(build) cargo"
    assert failure["message"].startswith("error: no matching package named `rand` found")
    assert "offline mode" in failure["message"]


def test_unreadable_output_is_not_parsed():
    assert not parse_cargo("bash: cargo: command not found\n").parsed


def test_the_rust_template_reads_cargo_output():
    results = parse_results(get_template("rust"), read("failing"))
    assert (results.passed, results.failed) == (4, 5)
