"""Jest's --json report, as Jest 30 wrote it in the react template's sandbox.

The fixtures are real reports (tests/unit/fixtures/jest/), captured by running
the template's test command: all green; a describe block with a passing test,
a failed assertion and a failed query; a test file with a syntax error next to
a passing one.
"""

from __future__ import annotations

import json
from pathlib import Path

from devlooper.results import parse_jest, parse_results
from devlooper.templates import get_template

FIXTURES = Path(__file__).parent / "fixtures" / "jest"


def report(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def test_all_green():
    results = parse_jest(report("passing"))
    assert (results.passed, results.failed, results.failures, results.parsed) == (1, 0, [], True)


def test_failed_tests_are_named_by_file_describe_and_title():
    results = parse_jest(report("failing"))
    assert (results.passed, results.failed) == (1, 2)
    names = [f["name"] for f in results.failures]
    assert names == ["src/Greeting.test.jsx::Greeting > says goodbye", "src/Greeting.test.jsx::Greeting > finds a button"]


def test_a_failure_message_keeps_the_assertion_and_the_project_frame_not_the_harness():
    goodbye, button = parse_jest(report("failing")).failures
    assert "Expected element to have text content:\n  Goodbye, Ada!\nReceived:\n  Hello, Ada!" in goodbye["message"]
    assert "/workspace/src/Greeting.test.jsx:12:41" in goodbye["message"]  # where in the project it failed
    assert "node_modules" not in goodbye["message"] and "<anonymous>" not in goodbye["message"]
    assert 'Unable to find an accessible element with the role "button"' in button["message"]
    assert "\x1b[" not in button["message"]  # Testing Library colours its DOM dump


def test_a_file_that_does_not_parse_is_one_failure_with_its_error():
    results = parse_jest(report("syntax_error"))
    assert (results.passed, results.failed) == (1, 1)
    [failure] = results.failures
    assert failure["name"] == "src/Broken.test.jsx"
    message = failure["message"]
    assert "SyntaxError: /workspace/src/Broken.test.jsx: Unexpected token (4:43)" in message
    assert "toBeTruthy(;" in message  # the code frame that shows the fault
    # Jest's generic advice and babel's parser frames are gone; the raw report holds ~14 kB of them.
    assert "transformIgnorePatterns" not in message and "@babel/parser" not in message
    assert len(message) < 600


def test_parse_results_reads_the_react_templates_report():
    template = get_template("react")
    assert template.results == "jest" and template.results_file == ".devlooper-results.json"
    results = parse_results(template, "", report("failing"))
    assert results.parsed and results.failed == 2


def test_no_report_or_a_broken_one_leaves_the_raw_output_to_tell():
    template = get_template("react")
    assert not parse_results(template, "No tests found, exiting with code 1", None).parsed
    assert not parse_jest("{truncated").parsed
    assert not parse_jest(json.dumps([1, 2])).parsed
