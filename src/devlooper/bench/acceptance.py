"""The acceptance check: a task's hidden tests run against a finished output.

After the loop ends, the output's files (as ``finish`` wrote them, manifest
included) and the hidden tests go into a *fresh* sandbox: a new workspace whose
environment is only the template plus what the output's own manifest declares,
installed the way improve mode installs a project's dependencies. Nothing of
the run's sandbox carries over, so an output that passes here stands alone.

The template's whole test command runs, the model's own tests included: an
output passes when everything passes *and* every hidden test file ran (an output
whose configuration skips or deselects the hidden tests, a conftest.py say, does
not pass by running nothing). The failing tests that come from the hidden files
are named apart, so a table can tell "its own tests fail" from "the hidden tests
catch what its own tests missed".
"""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from ..bounded import clip
from ..improve import declared_packages
from ..nodes.environment import install_layer
from ..results import parse_results
from ..sandboxes import make_sandbox
from ..templates.base import EnvTemplate

OUTPUT_KEPT = 4_000  # characters of the acceptance run's output kept in the results


@dataclass
class Acceptance:
    passed: bool
    exit_code: int | None
    tests_passed: int = 0
    tests_failed: int = 0
    hidden_failures: list[str] = field(default_factory=list)  # failing tests from the hidden files
    hidden_not_run: list[str] = field(default_factory=list)  # hidden test files none of whose tests ran
    install_ok: bool = True
    output: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "passed": self.passed, "exit_code": self.exit_code, "tests_passed": self.tests_passed,
            "tests_failed": self.tests_failed, "hidden_failures": self.hidden_failures,
            "hidden_not_run": self.hidden_not_run,
            "install_ok": self.install_ok, "output": self.output, "seconds": round(self.seconds, 3),
        }


def _from_hidden(name: str, hidden: dict[str, str]) -> bool:
    """A failing test's id starts with its file's path (pytest node ids, Jest's test files,
    cargo's test binaries); a file that failed to run at all is named by its path alone."""
    return any(name == path or name.startswith(path + "::") for path in hidden)


# Hidden files that are test files, by runner: the others (fixtures, data) run nothing themselves.
TEST_FILE = {
    "junit": re.compile(r"(^|/)(test_[^/]*|[^/]*_test)\.py$"),
    "jest": re.compile(r"\.(test|spec)\.[cm]?[jt]sx?$"),
    "cargo": re.compile(r"^tests/[^/]+\.rs$"),
}
_CARGO_RUN = re.compile(r"^\s+Running (\S+) \(.*$", re.M)
_CARGO_TEST = re.compile(r"^test .+ \.\.\. (ok|FAILED)\b", re.M)


def files_that_ran(kind: str, output: str, report: str | None) -> set[str] | None:
    """The test files at least one test of which passed or failed (not skipped), as
    project paths; None when the runner's report cannot tell."""
    try:
        if kind == "junit" and report:
            return {
                case.get("file", "") for case in ET.fromstring(report).iter("testcase") if case.find("skipped") is None
            }
        if kind == "jest" and report:
            return {
                suite.get("name", "").split("/workspace/", 1)[-1] if "/workspace/" in suite.get("name", "")
                else suite.get("name", "")
                for suite in json.loads(report).get("testResults", [])
                if any(c.get("status") in ("passed", "failed") for c in suite.get("assertionResults", []))
            }
        if kind == "cargo":
            headers = list(_CARGO_RUN.finditer(output))
            ran = set()
            for header, following in zip(headers, [*headers[1:], None]):
                if _CARGO_TEST.search(output, header.end(), following.start() if following else len(output)):
                    ran.add(header.group(1))
            return ran
    except (ET.ParseError, ValueError, AttributeError):
        return None
    return None


def hidden_not_run(kind: str, output: str, report: str | None, hidden: dict[str, str]) -> list[str]:
    """The hidden test files none of whose tests ran; empty when the runner cannot tell."""
    pattern = TEST_FILE.get(kind)
    ran = files_that_ran(kind, output, report)
    if pattern is None or ran is None:
        return []
    # A junit file path may be relative to the workspace, or absolute inside it.
    ran_paths = {p.split("/workspace/", 1)[-1].removeprefix("./") for p in ran}
    return sorted(p for p in hidden if pattern.search(p) and p not in ran_paths and not any(r.endswith("/" + p) for r in ran))


async def run_acceptance(
    files: dict[str, str],
    hidden: dict[str, str],
    template: EnvTemplate,
    *,
    backend: str = "local",
    isolation: str | None = None,
    install_timeout: float = 600.0,
    test_timeout: float = 300.0,
) -> Acceptance:
    """Run ``hidden`` (path -> content, overriding an output file of the same path) with
    ``files`` in a fresh sandbox; a failed install or a red test run is a failed check
    (data), only a sandbox that cannot start raises."""
    workspace = {**files, **{p: t for p, t in template.setup_files.items() if p not in files}, **hidden}
    box = make_sandbox(backend, template, run_id=f"accept-{uuid.uuid4().hex}", isolation=isolation)
    async with box:
        packages = declared_packages(workspace, template.runtime)
        await box.sync_files(workspace)
        if packages:
            installed = await box.add_layer(install_layer(packages, 0), timeout=install_timeout)
            if not installed.ok:
                text = clip(installed.output, OUTPUT_KEPT)[0]
                return Acceptance(passed=False, exit_code=None, install_ok=False,
                                  output=f"installing the output's manifest failed:\n{text}", seconds=installed.duration)
            await box.sync_files(workspace)  # the install changes the environment, never the project
        if template.results_file:
            await box.delete_file(template.results_file)
        result = await box.exec(template.test_command, timeout=test_timeout)
        report = None
        if template.results_file:
            try:
                report = await box.read_file(template.results_file)
            except (OSError, ValueError):  # none written (the runner crashed), or not readable back
                report = None
        parsed = parse_results(template, result.output, report)
    not_run = hidden_not_run(template.results, result.output, report, hidden)
    return Acceptance(
        passed=result.ok and not not_run,
        exit_code=result.exit_code,
        tests_passed=parsed.passed,
        tests_failed=parsed.failed,
        hidden_failures=sorted(f["name"] for f in parsed.failures if _from_hidden(f["name"], hidden)),
        hidden_not_run=not_run,
        output=clip(result.output, OUTPUT_KEPT)[0],
        seconds=result.duration,
    )
