"""`devlooper demo` end to end, then its output tested outside devlooper."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_offline_and_its_output_stands_alone(tmp_path: Path):
    out = tmp_path / "output"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    demo = subprocess.run(
        [sys.executable, "-m", "devlooper", "demo", "--output", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert demo.returncode == 0, demo.stderr
    assert "replayed" in demo.stderr  # the CLI says the model is a recording
    assert demo.stdout.strip() == str(out.resolve())
    report = json.loads((out / ".devlooper" / "report.json").read_text())
    assert report["status"] == "passed"
    assert 2 <= report["iterations"] <= 3
    assert [r["exit_code"] == 0 for r in report["test_runs"]][-1]
    assert any(layer["kind"] == "install" for layer in report["layers"])
    assert report["thread_id"]
    requirements = (out / "requirements.txt").read_text()
    assert "numpy==" in requirements and "pytest==" in requirements

    # Outside devlooper: a fresh venv from the manifest, then plain pytest.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", "requirements.txt"],
        cwd=out, check=True, timeout=600,
    )
    tests = subprocess.run(
        [venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=out, capture_output=True, text=True, timeout=300,
    )
    assert tests.returncode == 0, tests.stdout
    assert " passed" in tests.stdout and "failed" not in tests.stdout


def test_demo_refuses_a_non_empty_output(tmp_path: Path):
    out = tmp_path / "output"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    demo = subprocess.run(
        [sys.executable, "-m", "devlooper", "demo", "--output", str(out)], capture_output=True, text=True, timeout=60
    )
    assert demo.returncode == 2 and "--force" in demo.stderr
    assert (out / "mine.txt").read_text() == "keep me"
