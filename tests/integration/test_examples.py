"""Every example in examples/ runs offline, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args: str, output: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLES.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args, "--output", str(output)],
        capture_output=True, text=True, timeout=300, env=env,
    )


def assert_project(output: Path) -> None:
    assert "separator.join" in (output / "slugify.py").read_text()  # the fixed version
    assert (output / "requirements.txt").read_text().startswith("pytest==")
    assert (output / ".devlooper" / "report.json").exists()


def test_subgraph(tmp_path: Path):
    done = run_example("subgraph.py", output=tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("passed: A slugify function for URL slugs (slugify.py, tests/test_slugify.py)")
    assert "#1 exit 1, #2 exit 0" in done.stdout
    assert_project(tmp_path / "out")


def test_agent_tool(tmp_path: Path):
    done = run_example("agent_tool.py", output=tmp_path / "out")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("tool build_project: passed after 2 test run(s)")
    assert lines[-1].startswith("agent: Done")
    assert_project(tmp_path / "out")


@pytest.mark.parametrize("mode", ["updates", "events"])
def test_stream_progress(tmp_path: Path, mode: str):
    done = run_example("stream_progress.py", "--mode", mode, output=tmp_path / "out")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "passed: tests pass after 2 iteration(s)"
    if mode == "updates":
        steps = [line for line in lines[:-1] if not line.startswith("  ...")]
        assert [line.split()[0] for line in steps] == [
            "design", "generate", "test", "diagnose", "plan", "apply", "test", "finish",
        ]
        assert "#1: exit 1, 3 passed, 1 failed (tests/" in steps[2]
        assert "  ...      waiting for diagnose:1" in lines
    else:
        assert "model diagnose:1" in lines and "model fix_file:1:slugify.py" in lines
        starts = [line.split()[1] for line in lines if line.startswith("start ")]
        assert starts == ["design", "generate", "test", "diagnose", "plan", "apply", "test", "finish"]
        # each model call is reported inside the step that made it
        assert lines.index("model plan:1") == lines.index("start plan") + 1
    assert_project(tmp_path / "out")
