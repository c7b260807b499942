"""Reading test results out of a test run's output.

Counts and failing test names are a progress measure (how many tests pass)
and let diagnose show each failure's message; the raw output stays the
fallback when nothing can be parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .state import TestFailure
from .templates.base import EnvTemplate

_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|errors?)\b")
_PYTEST_FAILURE = re.compile(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$", re.M)


@dataclass
class Results:
    passed: int = 0
    failed: int = 0
    failures: list[TestFailure] = field(default_factory=list)


def parse_pytest(output: str) -> Results:
    summary = [ln for ln in output.splitlines() if re.search(r"\d+ (passed|failed|errors?)\b.* in [\d.]+s", ln)]
    counts: dict[str, int] = {}
    if summary:
        for n, word in _PYTEST_COUNT.findall(summary[-1]):
            counts[word.rstrip("s") if word.startswith("error") else word] = int(n)
    failures = [
        TestFailure(name=name, message=(message or kind).strip()[:500])
        for kind, name, message in _PYTEST_FAILURE.findall(output)
    ]
    return Results(
        passed=counts.get("passed", 0),
        failed=counts.get("failed", 0) + counts.get("error", 0),
        failures=failures,
    )


def parse_results(template: EnvTemplate, output: str) -> Results:
    if template.runtime == "python":
        return parse_pytest(output)
    return Results()
