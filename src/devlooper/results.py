"""Structured test results: passed and failed test names, each failure's message.

Counts are the progress measure loop memory compares; the failures give
diagnose one excerpt per failing test. Each template names its format:
JUnit XML (pytest and most other runners), Jest's ``--json`` report, or
cargo test's text summary. When nothing can be read (the runner crashed before
writing its report) the raw output stays the fallback, and for pytest its
summary lines are still read from the output.
"""

from __future__ import annotations

import json
import re
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from .state import TestFailure
from .templates.base import EnvTemplate

MESSAGE_LIMIT = 800  # characters kept of one failure's message


@dataclass
class Results:
    passed: int = 0
    failed: int = 0
    failures: list[TestFailure] = field(default_factory=list)
    parsed: bool = False  # False: nothing structured was found, only the raw output tells


def _failure(name: str, message: str) -> TestFailure:
    message = message.strip()
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT // 2] + "\n[...]\n" + message[-MESSAGE_LIMIT // 2 :]
    return TestFailure(name=name, message=message)


# --- JUnit XML -------------------------------------------------------------------
def _junit_id(case: ET.Element) -> str:
    """A test's id: pytest's node id when the case names its file (xunit1), else classname::name."""
    classname, name, path = case.get("classname", ""), case.get("name", "?"), case.get("file")
    if path and path.endswith(".py"):
        module = path[:-3].replace("/", ".")
        inner = classname[len(module) + 1 :].split(".") if classname.startswith(module + ".") else []
        return "::".join([path, *inner, name])
    return f"{classname}::{name}" if classname else name


def parse_junit(report: str) -> Results:
    """JUnit XML (``<testsuites>`` or one ``<testsuite>``): a case with a
    ``failure`` or ``error`` child failed, one with ``skipped`` is not counted."""
    try:
        root = ET.fromstring(report)
    except ET.ParseError:
        return Results()
    out = Results(parsed=True)
    for case in root.iter("testcase"):
        test_id = _junit_id(case)
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            out.failed += 1
            head = problem.get("message") or problem.tag
            body = (problem.text or "").strip()
            out.failures.append(_failure(test_id, f"{head}\n{body}" if body and body != head else head))
        elif case.find("skipped") is None:
            out.passed += 1
    return out


# --- Jest --json -----------------------------------------------------------------
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Stack frames inside the test harness (node_modules, node's internals) say nothing about the project.
_HARNESS_FRAME = re.compile(r"^\s*at .*(node_modules/|node:internal|<anonymous>).*\n?", re.M)
# Jest's advice after a parse error (TypeScript, transformIgnorePatterns, docs links): the
# template's configuration already answers it; only the error after "Details:" matters.
_PARSE_ADVICE = re.compile(r"^\s*Jest failed to parse a file\..*?^\s*Details:\s*\n", re.M | re.S)


def _jest_message(text: str) -> str:
    text = _ANSI.sub("", text)
    text = _PARSE_ADVICE.sub("", text)
    text = _HARNESS_FRAME.sub("", text)
    text = textwrap.dedent(text.replace("\u25cf ", "")).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text)


def _jest_file(path: str) -> str:
    """A test file's project path: Jest reports absolute paths under the workdir."""
    return path.split("/workspace/", 1)[-1] if "/workspace/" in path else path


def parse_jest(report: str) -> Results:
    """Jest's ``--json`` report: per-test statuses and failure messages; a test
    file that failed to run at all (a syntax error, a missing module) counts
    as one failure, named by its file."""
    try:
        data = json.loads(report)
    except (json.JSONDecodeError, TypeError):
        return Results()
    if not isinstance(data, dict):
        return Results()
    out = Results(passed=int(data.get("numPassedTests", 0)), failed=int(data.get("numFailedTests", 0)), parsed=True)
    for suite in data.get("testResults", []):
        short = _jest_file(suite.get("name", ""))
        cases = suite.get("assertionResults", [])
        for case in cases:
            if case.get("status") == "failed":
                name = " > ".join([*case.get("ancestorTitles", []), case.get("title", "?")])
                message = _jest_message("\n".join(case.get("failureMessages", [])))
                out.failures.append(_failure(f"{short}::{name}", message))
        if suite.get("status") == "failed" and not any(c.get("status") == "failed" for c in cases):
            out.failed += 1  # the file did not run (or a hook failed): its error is the failure
            out.failures.append(_failure(short, _jest_message(suite.get("message") or "test file failed to run")))
    return out


# --- cargo test ------------------------------------------------------------------
_CARGO_LINE = re.compile(r"^test (\S+) \.\.\. (ok|FAILED|ignored)", re.M)
_CARGO_SECTION = re.compile(r"^---- (\S+) stdout ----\n(.*?)(?=^---- \S+ stdout ----|^failures:\n\s+\S|\Z)", re.M | re.S)
_CARGO_ERROR = re.compile(r"^error(\[E\d+\])?: .*(?:\n(?!\n).*)*", re.M)


def parse_cargo(output: str) -> Results:
    """cargo test's text: one ``test NAME ... ok|FAILED`` line per test, the
    captured output of each failure, and compile errors when it did not build."""
    statuses = _CARGO_LINE.findall(output)
    messages = {name: text for name, text in _CARGO_SECTION.findall(output)}
    out = Results(parsed=bool(statuses))
    for name, status in statuses:
        if status == "ok":
            out.passed += 1
        elif status == "FAILED":
            out.failed += 1
            out.failures.append(_failure(name, messages.get(name, "failed")))
    if not statuses and "could not compile" in output:
        errors = [m.group(0) for m in _CARGO_ERROR.finditer(output) if "could not compile" not in m.group(0)]
        out = Results(failed=1, failures=[_failure("(build)", "\n\n".join(errors[:5]) or "could not compile")], parsed=True)
    return out


# --- pytest text (when its JUnit report is missing) ------------------------------
_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|errors?)\b")
_PYTEST_FAILURE = re.compile(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$", re.M)


def parse_pytest_text(output: str) -> Results:
    summary = [ln for ln in output.splitlines() if re.search(r"\d+ (passed|failed|errors?)\b.* in [\d.]+s", ln)]
    counts: dict[str, int] = {}
    if summary:
        for n, word in _PYTEST_COUNT.findall(summary[-1]):
            counts[word.rstrip("s") if word.startswith("error") else word] = int(n)
    failures = [_failure(name, message or kind) for kind, name, message in _PYTEST_FAILURE.findall(output)]
    return Results(
        passed=counts.get("passed", 0),
        failed=counts.get("failed", 0) + counts.get("error", 0),
        failures=failures,
        parsed=bool(summary),
    )


def parse_results(template: EnvTemplate, output: str, report: str | None = None) -> Results:
    """Read a test run: ``report`` is the content of the template's results file, if it wrote one."""
    if template.results == "junit" and report:
        results = parse_junit(report)
        if results.parsed:
            return results
    if template.results == "jest" and report:
        return parse_jest(report)
    if template.results == "cargo":
        return parse_cargo(output)
    if template.runtime == "python":
        return parse_pytest_text(output)
    return Results()
