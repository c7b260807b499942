"""What the `devlooper` command shows: a live view on a terminal, plain lines in a
pipe, one line with --quiet, JSON events with --json; and the past runs it lists
and reports on. The command runs in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from devlooper import Context, ReplayChatModel
from devlooper.archive import list_runs, rebuild_report
from devlooper.errors import CassetteError
from devlooper.runner import run
from tests.integration.test_loop import BAD, FIX, GOOD, replies

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Longer than any terminal's 80 columns: a pipe must get it on one line.
DIAGNOSIS = (
    "The test for add fails because add subtracts its second argument from the first instead of adding "
    "the two, so add(2, 3) returns -1 where the test expects 5.\nSecond paragraph of the diagnosis."
)
SCRIPT = replies(BAD, **{"diagnose:1": DIAGNOSIS, "plan:1": FIX, "fix_file:1:adder.py": GOOD})


def cassette(tmp_path: Path, script: dict = SCRIPT) -> str:
    path = tmp_path / "cassette.json"
    path.write_text(json.dumps({"version": 1, "calls": [{"key": k, "reply": v} for k, v in script.items()]}))
    return f"replay:{path}"


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])}


def devlooper(tmp_path: Path, *flags: str, thread: str = "t-cli", command: str = "run") -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "devlooper", command, "an adder", "--model", cassette(tmp_path),
            "--output", str(tmp_path / thread), "--db", str(tmp_path / "db.sqlite"), "--thread-id", thread, *flags]
    return subprocess.run(argv, capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=240)


def test_piped_output_is_one_plain_line_per_step(tmp_path: Path):
    done = devlooper(tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    first = DIAGNOSIS.splitlines()[0]
    [diagnosis] = [line for line in lines if "diagnose" in line[:10]]
    assert first[:159] in diagnosis  # one line, however narrow a terminal would be
    assert "\x1b[" not in done.stderr  # no colour codes in a pipe
    assert any("tests/test_adder.py::test_add" in line for line in lines)  # the failing test, by name
    assert any(line.strip().startswith("finish") and "passed" in line for line in lines)
    # Every line starts with a step name or continues one: none is the tail of a wrapped sentence.
    for line in lines:
        assert len(line) > 80 or not line.startswith(("the ", "so ", "instead ")), line
    assert done.stdout.strip() == str(tmp_path / "t-cli")  # the output's path, for scripts


def test_quiet_prints_one_line(tmp_path: Path):
    done = devlooper(tmp_path, "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    [line] = done.stdout.splitlines()
    assert line.startswith("passed: tests pass after 2 iteration(s)") and "t-cli" in line


def json_events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_json_prints_the_events_of_the_run_one_per_line(tmp_path: Path):
    done = devlooper(tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    events = json_events(done.stdout)
    assert events[0] == {"event": "metadata", "data": {"thread_id": "t-cli"}}
    assert events[-1]["event"] == "result" and events[-1]["data"]["status"] == "passed"
    updates = [(node, data) for e in events if e["event"] == "updates" for node, data in e["data"].items()]
    assert [node for node, _ in updates] == ["design", "generate", "test", "diagnose", "plan", "apply", "test", "finish"]
    steps = {node: data["event"] for node, data in updates if node != "test"}
    first_test = updates[2][1]["event"]
    assert [f["name"] for f in first_test["failing"]] == ["tests/test_adder.py::test_add"]
    assert steps["diagnose"]["diagnosis"] == DIAGNOSIS and steps["plan"]["summary"] == FIX["summary"]
    assert "+    return a + b" in steps["apply"]["edits"][0]["diff"]
    custom = [e["data"] for e in events if e["event"] == "custom"]
    model = [(c["event"], c["key"]) for c in custom if c["event"].startswith("model_")]
    assert ("model_start", "diagnose:1") in model and ("model_end", "diagnose:1") in model
    assert model.index(("model_start", "diagnose:1")) < model.index(("model_end", "diagnose:1"))
    assert [c["node"] for c in custom if c["event"] == "step_start"][:4] == ["design", "generate", "test", "diagnose"]

    # The same thread is listed and its report rebuilt from the checkpoints.
    listed = subprocess.run([sys.executable, "-m", "devlooper", "runs", "--json", "--db", str(tmp_path / "db.sqlite")],
                            capture_output=True, text=True, env=env(), timeout=60)
    [row] = json_events(listed.stdout)
    assert row["thread_id"] == "t-cli" and row["status"] == "passed" and row["iterations"] == 2
    assert row["prompt"] == "an adder" and row["template"] == "python" and row["started"]
    rebuilt = subprocess.run(
        [sys.executable, "-m", "devlooper", "report", "t-cli", "--db", str(tmp_path / "db.sqlite"), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, env=env(), timeout=60,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert Path(rebuilt.stdout.strip()) == tmp_path / "r" / "report.html"
    written = json.loads((tmp_path / "t-cli" / ".devlooper" / "report.json").read_text())
    again = json.loads((tmp_path / "r" / "report.json").read_text())
    assert again["timeline"] == written["timeline"] and again["status"] == "passed"
    assert written["timeline"][1]["diagnosis"] == DIAGNOSIS


def test_a_terminal_shows_a_spinner_the_step_and_the_model_call_while_it_waits(tmp_path: Path):
    model = cassette(tmp_path)
    argv = [sys.executable, "-m", "tests.integration.slow_cli", "1.5", "run", "an adder", "--model", model,
            "--output", str(tmp_path / "out"), "--db", str(tmp_path / "db.sqlite")]
    main, child = pty.openpty()
    proc = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, cwd=ROOT,
                            env={**env(), "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"})
    os.close(child)
    seen = b""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    proc.wait(30)
    os.close(main)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode("utf-8", "replace"))
    assert proc.returncode == 0, text[-3000:]
    # While diagnose:1 waits on the slowed model: the spinner, the step, the call, the time.
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] diagnose · model: diagnose:1 · \d+\.\ds", text), text[-3000:]
    assert re.search(r"iteration 1/10 · 1 passed, 1 failed · tokens", text)
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] generate · model: (plan_project|generate_file:)", text)
    assert "passed: tests pass after 2 iteration(s)" in text


async def test_a_crashed_run_is_listed_and_its_report_rebuilt(tmp_path: Path):
    db = str(tmp_path / "db.sqlite")
    # No reply for the fix: the model client fails inside apply, after diagnose and plan were checkpointed.
    script = {k: v for k, v in SCRIPT.items() if not k.startswith("fix_file")}
    with pytest.raises(CassetteError):
        await run("an adder", Context(chat_model=ReplayChatModel.from_replies(script)), thread_id="crashed", db=db)
    await run("an adder", Context(chat_model=ReplayChatModel.from_replies(SCRIPT)), thread_id="done", db=db)

    rows = await list_runs(db)
    assert [(r["thread_id"], r["status"], r["iterations"]) for r in rows] == [("done", "passed", 2), ("crashed", "unfinished", 1)]
    page = await rebuild_report("crashed", db=db, out=tmp_path / "report")
    report = json.loads((page.parent / "report.json").read_text())
    assert report["status"] == "unfinished" and "devlooper resume crashed" in report["reason"]
    assert "last recorded step was plan" in report["reason"]
    [generation, first] = report["timeline"]
    assert first["test"]["failing"][0]["name"] == "tests/test_adder.py::test_add"
    assert first["diagnosis"] == DIAGNOSIS and first["plan"]["summary"] == FIX["summary"]
    assert "iteration-1" in page.read_text()
