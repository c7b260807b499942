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

from .bounded import clip
from .fingerprint import message_signature
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
    """A failure with a bounded excerpt of its message, and the signature of all of it."""
    message = message.strip()
    return TestFailure(name=name, message=clip(message, MESSAGE_LIMIT)[0], signature=message_signature(message))


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
# Each test binary starts with a header on cargo's stderr (the template merges the
# streams): "Running unittests src/lib.rs (...)", "Running tests/more.rs (...)",
# "Doc-tests app". Test names are only unique within their binary.
_CARGO_TARGET = re.compile(r"^\s+(?:Running (?:unittests )?(\S+) \(.*|Doc-tests \S+)$", re.M)
_CARGO_STATUS = re.compile(r"^test (.+?)(?: - should panic)? \.\.\. (ok|FAILED|ignored)\b.*$", re.M)
_CARGO_CAPTURED = re.compile(
    r"^---- (.+?) stdout ----$\n(.*?)(?=^---- .+? stdout ----$|^failures:$|\Z)", re.M | re.S
)
# A diagnostic runs until the next one, rustc's closing hint, or cargo's next step.
_CARGO_ERROR = re.compile(
    r"^error(?:\[E\d+\])?: .*?"
    r"(?=^(?:error|warning)(?:\[\w+\])?: |^For more information|^\s+(?:Compiling|Finished|Running|Doc-tests) |\Z)",
    re.M | re.S,
)
# cargo's own summary lines, not a problem of the code.
_CARGO_SUMMARY = re.compile(
    r"^error: (?:could not compile|aborting due to|test failed|doctest failed|\d+ targets? failed)"
)
_CARGO_LOCATION = re.compile(r"^\s*--> ([^:\s]+)", re.M)
_THREAD_ID = re.compile(r"^(thread '[^']*') \(\d+\) panicked", re.M)  # differs on every run
_BACKTRACE = re.compile(r"^stack backtrace:\n.*?^note: Some details are omitted.*?$\n?", re.M | re.S)
_BACKTRACE_NOTE = re.compile(r"^note: run with `RUST_BACKTRACE=1`.*$\n?", re.M)


def _panic_message(text: str) -> str:
    text = _THREAD_ID.sub(r"\1 panicked", text)
    return _BACKTRACE_NOTE.sub("", _BACKTRACE.sub("", text))


def _cargo_binary(target: str | None, text: str, out: Results) -> None:
    """One test binary's run: its statuses and the captured output of each failure."""
    prefix = f"{target}::" if target else ""  # doc-test names already name their file
    captured = {name: body for name, body in _CARGO_CAPTURED.findall(text)}
    for name, status in _CARGO_STATUS.findall(text):
        if status == "ok":
            out.passed += 1
        elif status == "FAILED":
            out.failed += 1
            out.failures.append(_failure(prefix + name, _panic_message(captured.get(name, "")) or "failed"))
    if re.search(r"^running \d+ tests?$", text, re.M) and not re.search(r"^test result: ", text, re.M):
        # The binary died (abort, stack overflow, a timeout) before its summary.
        out.failed += 1
        rest = "\n".join(ln for ln in text.strip().splitlines() if not _CARGO_STATUS.match(ln))
        out.failures.append(_failure(target or "doc-tests", "the test binary did not finish:\n" + rest.strip()))


def _cargo_build_errors(output: str) -> list[TestFailure]:
    """Compile (or manifest) errors: one failure each, named after the file they point at."""
    failures, seen = [], set()
    for match in _CARGO_ERROR.finditer(output):
        block = match.group(0).strip()
        if _CARGO_SUMMARY.match(block) or block in seen:
            continue
        seen.add(block)
        where = _CARGO_LOCATION.search(block)
        failures.append(_failure(f"(build) {where.group(1) if where else 'cargo'}", block))
    if not failures and "could not compile" in output:
        failures.append(_failure("(build) cargo", "could not compile"))
    return failures[:10]


def parse_cargo(output: str) -> Results:
    """cargo test's text: per test binary, one ``test NAME ... ok|FAILED`` line per
    test and the captured output of each failure; compile errors when it did not build."""
    headers = list(_CARGO_TARGET.finditer(output))
    out = Results(parsed=bool(headers))
    for header, following in zip(headers, [*headers[1:], None]):
        text = output[header.end() : following.start() if following else len(output)]
        _cargo_binary(header.group(1), text, out)
    if not headers:  # nothing ran: the build failed
        failures = _cargo_build_errors(output)
        if failures:
            out = Results(failed=len(failures), failures=failures, parsed=True)
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
