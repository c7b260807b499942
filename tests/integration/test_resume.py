"""Crash-safe resume and time travel through the CLI, in real processes.

A run is killed with SIGKILL in the middle of an iteration; `devlooper resume`
in a new process rebuilds the sandbox from the checkpointed state and finishes
with the same output as a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SLEEP = 2.0  # seconds each test run takes, the window in which the run is killed

PLAN = {
    "notes": "one module and its tests",
    "files": [{"path": "adder.py", "purpose": "add()"}, {"path": "tests/test_adder.py", "purpose": "tests"}],
    "packages": [],
}
TESTS = f"""import time

from adder import add


def test_add():
    time.sleep({SLEEP})
    assert add(2, 3) == 5


def test_environment_layer():
    import crashmark  # written into the environment by the plan's command

    assert crashmark.MARK == 7
"""
# A command layer that changes the environment: a resumed run must replay it.
LAYER = (
    "python -c \"import sysconfig, pathlib; "
    "pathlib.Path(sysconfig.get_paths()['purelib'], 'crashmark.py').write_text('MARK = 7')\""
)
CALLS = [
    {"key": "plan_project", "reply": PLAN},
    {"key": "generate_file:adder.py", "reply": "def add(a, b):\n    return a - b\n"},
    {"key": "generate_file:tests/test_adder.py", "reply": TESTS},
    {"key": "diagnose:1", "reply": "add subtracts, and the crashmark module is missing from the environment"},
    {
        "key": "plan:1",
        "reply": {
            "summary": "fix add and provide crashmark",
            "actions": [
                {"kind": "fix_file", "path": "adder.py", "instructions": "use +"},
                {"kind": "command", "command": LAYER},
            ],
        },
    },
    {"key": "fix_file:1:adder.py", "reply": "def add(a, b):\n    return a + b\n"},
]


@pytest.fixture
def cassette(tmp_path: Path) -> Path:
    path = tmp_path / "cassette.json"
    path.write_text(json.dumps({"version": 1, "calls": CALLS}))
    return path


def devlooper(*args: str) -> list[str]:
    return [sys.executable, "-m", "devlooper", *args]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(devlooper(*args), capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


def project(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): p.read_text()
        for p in sorted(out.rglob("*"))
        # The reports hold times: report.json is compared without them, report.html is its rendering.
        if p.is_file() and p.relative_to(out).as_posix() not in (".devlooper/report.json", ".devlooper/report.html")
    }


def comparable(report: dict) -> dict:
    """The report without what differs between any two runs (times, thread id)."""
    return {
        "status": report["status"],
        "iterations": report["iterations"],
        "test_runs": [{k: r[k] for k in ("iteration", "exit_code", "passed", "failed")} for r in report["test_runs"]],
        "actions": report["actions"] and [
            {**a, "results": [{k: r[k] for k in ("kind", "target", "ok")} for r in a["results"]]}
            for a in report["actions"]
        ],
        "layers": report["layers"],
        "edits": report["edits"],
        "files": report["files"],
    }


def remove_orphaned_sandbox(db: Path, thread: str) -> None:
    """A process killed with SIGKILL cannot remove its sandbox's temp dir: do it for it."""
    import asyncio
    import glob
    import shutil
    import tempfile

    from devlooper.runner import compile_graph, open_saver

    async def run_id() -> str:
        async with open_saver(db) as saver:
            return (await compile_graph(saver).aget_state({"configurable": {"thread_id": thread}})).values["run_id"]

    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"devlooper-{asyncio.run(run_id())[:8]}-*")):
        shutil.rmtree(path, ignore_errors=True)


def without_timings(value):
    """A report with every wall-clock figure (timings, durations, seconds) taken out."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in ("timings", "duration", "seconds")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    if isinstance(value, str):  # a test runner's own clock in its output ("1 passed in 0.31s")
        return re.sub(r"\b\d+(\.\d+)?s\b", "<seconds>", value)
    return value


def crash_run(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "tests.integration.crash_run", *map(str, args)]


NODES = ["design", "generate", "test", "diagnose", "plan", "apply", "finish"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("uninterrupted")
    done = subprocess.run(crash_run("run", where / "db.sqlite", where / "out", "t"), capture_output=True, text=True,
                          timeout=300, env=os.environ.copy())
    assert done.returncode == 0 and done.stdout.strip() == "passed", done.stderr
    return where / "out"


@pytest.mark.parametrize("node", NODES)
def test_a_run_killed_inside_any_node_resumes_to_the_same_output_and_report(node: str, tmp_path: Path, uninterrupted: Path):
    db, out = tmp_path / "db.sqlite", tmp_path / "out"
    inside = Path(f"{db}.inside")
    proc = subprocess.Popen(crash_run("run", db, out, "t", node), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        while not inside.exists():
            assert proc.poll() is None, f"the run ended before reaching {node}: {proc.stderr.read()}"
            assert time.monotonic() < deadline, f"the run never reached {node}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if node not in ("design", "generate"):  # before generate's checkpoint the run has no sandbox (nor run id)
        remove_orphaned_sandbox(db, "t")

    resumed = subprocess.run(crash_run("resume", db, "t"), capture_output=True, text=True, timeout=300,
                             env=os.environ.copy())
    assert resumed.returncode == 0 and resumed.stdout.strip() == "passed", resumed.stderr
    assert project(out) == project(uninterrupted)
    reports = [json.loads((d / ".devlooper" / "report.json").read_text()) for d in (uninterrupted, out)]
    assert without_timings(reports[1]) == without_timings(reports[0])


def history(thread: str, db: Path) -> list[dict]:
    done = cli("history", thread, "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_run_killed_mid_iteration_resumes_to_the_same_output(tmp_path: Path, cassette: Path):
    model = f"replay:{cassette}"

    whole = cli("run", "an adder", "--model", model, "--output", str(tmp_path / "whole"),
                "--db", str(tmp_path / "whole.sqlite"), "--thread-id", "whole")
    assert whole.returncode == 0, whole.stderr
    assert "#2 green" in whole.stderr

    db, out = tmp_path / "crash.sqlite", tmp_path / "crash"
    proc = subprocess.Popen(
        devlooper("run", "an adder", "--model", model, "--output", str(out), "--db", str(db), "--thread-id", "crash"),
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=os.environ.copy(),
    )
    seen = []
    try:
        for line in proc.stderr:  # one progress line per node
            seen.append(line)
            if line.strip().startswith("apply"):
                break
        time.sleep(SLEEP / 3)  # now inside the second test run, which takes SLEEP seconds
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (out / ".devlooper" / "report.json").exists()
    remove_orphaned_sandbox(db, "crash")
    before = history("crash", db)
    assert before[-1]["node"] == "apply" and before[-1]["next"] == "test"  # killed inside `test`
    assert before[-1]["iteration"] == 1 and before[-1]["exit_code"] == 1

    # A new process, no settings given: the model, limits and output come from the checkpoint.
    resumed = cli("resume", "crash", "--db", str(db))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == str(out.resolve())
    assert "generate" not in resumed.stderr and "#2 green" in resumed.stderr  # continued, not restarted

    assert project(out) == project(tmp_path / "whole")
    same = [json.loads((d / ".devlooper" / "report.json").read_text()) for d in (tmp_path / "whole", out)]
    assert comparable(same[0]) == comparable(same[1])
    assert same[1]["thread_id"] == "crash"
    after = history("crash", db)
    assert [r["node"] for r in after[len(before):]] == ["test", "finish"]
    assert after[-1]["status"] == "passed"


def test_time_travel_forks_from_an_earlier_checkpoint(tmp_path: Path, cassette: Path):
    db = tmp_path / "db.sqlite"
    first = cli("run", "an adder", "--model", f"replay:{cassette}", "--output", str(tmp_path / "first"),
                "--db", str(db), "--thread-id", "t")
    assert first.returncode == 0, first.stderr
    rows = history("t", db)
    assert [r["node"] for r in rows] == [
        "input", "__start__", "design", "generate", "test", "diagnose", "plan", "apply", "test", "finish",
    ]
    red = next(r for r in rows if r["node"] == "test" and r["exit_code"] != 0)
    assert red["iteration"] == 1 and red["failing"] == 2 and red["next"] == "diagnose"

    # Fork from before the first test run with a budget of one test run: that run is
    # red, so the fork gives up there, with the unfixed file.
    generated = next(r for r in rows if r["node"] == "generate")
    assert generated["next"] == "test" and generated["exit_code"] is None
    fork = cli("resume", "t", "--from", generated["checkpoint_id"], "--db", str(db), "--max-iterations", "1",
               "--output", str(tmp_path / "fork"))
    assert fork.returncode == 1, fork.stderr
    assert "forking from checkpoint" in fork.stderr and "gave_up" in fork.stderr
    report = json.loads((tmp_path / "fork" / ".devlooper" / "report.json").read_text())
    assert report["status"] == "gave_up" and report["iterations"] == 1
    assert "a - b" in (tmp_path / "fork" / "adder.py").read_text()
    assert "a + b" in (tmp_path / "first" / "adder.py").read_text()  # the first branch is untouched

    rows = history("t", db)
    branch = [r for r in rows if r["source"] == "fork"]
    assert len(branch) == 1 and branch[0]["parent_id"] == generated["checkpoint_id"]
    assert rows[-1]["node"] == "finish" and rows[-1]["status"] == "gave_up"

    again = cli("resume", "t", "--db", str(db))  # the newest branch is finished: nothing to do
    assert again.returncode == 1 and "already finished (gave_up)" in again.stderr


def test_resume_of_an_unknown_thread_says_so(tmp_path: Path):
    done = cli("resume", "nope", "--db", str(tmp_path / "db.sqlite"))
    assert done.returncode == 2 and "no run with thread id nope" in done.stderr


def test_a_run_stopped_by_an_error_says_how_to_resume_and_resumes_with_another_model(tmp_path: Path, cassette: Path):
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"calls": [c for c in CALLS if not c["key"].startswith("fix_file")]}))
    db, out = tmp_path / "db.sqlite", tmp_path / "out"
    stopped = cli("run", "an adder", "--model", f"replay:{partial}", "--output", str(out), "--db", str(db),
                  "--thread-id", "e")
    said = stopped.stderr.replace("\n", "")
    assert stopped.returncode == 2  # a cassette without the reply is a configuration error
    assert "no reply for call 'fix_file:1:adder.py'" in said
    assert f"devlooper resume e --db {db}" in said
    assert history("e", db)[-1]["next"] == "apply"  # everything before the failing step is kept

    again = cli("run", "an adder", "--model", f"replay:{cassette}", "--db", str(db), "--thread-id", "e",
                "--output", str(tmp_path / "other"))
    assert again.returncode == 2 and "thread e already holds a run" in again.stderr

    resumed = cli("resume", "e", "--db", str(db), "--model", f"replay:{cassette}")
    assert resumed.returncode == 0, resumed.stderr
    assert f"model replay:{cassette}" in resumed.stderr.replace("\n", "")
    assert "a + b" in (out / "adder.py").read_text()


async def test_sigterm_stops_cleanly_and_the_run_resumes(tmp_path: Path, cassette: Path):
    import glob
    import tempfile

    from devlooper.runner import compile_graph, open_saver

    db, out = tmp_path / "db.sqlite", tmp_path / "out"
    proc = subprocess.Popen(
        devlooper("run", "an adder", "--model", f"replay:{cassette}", "--output", str(out), "--db", str(db),
                  "--thread-id", "term"),
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=os.environ.copy(),
    )
    try:
        for line in proc.stderr:
            if line.strip().startswith("apply"):
                break
        time.sleep(SLEEP / 3)  # inside the second test run
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(20) == 130, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "interrupted; the run is checkpointed" in rest
    assert f"devlooper resume term --db {db}" in rest.replace("\n", "")

    async with open_saver(db) as saver:
        state = await compile_graph(saver).aget_state({"configurable": {"thread_id": "term"}})
    run_id = state.values["run_id"]
    assert state.next == ("test",)
    # The stopped step's sandbox (workspace, home, tmp) was removed on the way out.
    assert glob.glob(os.path.join(tempfile.gettempdir(), f"devlooper-{run_id[:8]}-*")) == []

    resumed = cli("resume", "term", "--db", str(db))
    assert resumed.returncode == 0, resumed.stderr
    assert "a + b" in (out / "adder.py").read_text()


async def test_a_paused_interactive_run_resumes_later_with_an_answer(tmp_path: Path):
    from devlooper import Context
    from devlooper.runner import resume, run
    from tests.integration.test_cli_loop import cassette as loop_cassette
    from tests.integration.test_loop import GOOD
    from tests.integration.test_loop_memory import fix

    model = loop_cassette(tmp_path, **{"plan:5": fix("use + as the human said"), "fix_file:5:adder.py": GOOD})
    db, out = tmp_path / "db.sqlite", tmp_path / "out"
    # The plan is approved; then nobody answers (None): the run stays paused.
    paused = await run("a tiny library", Context(model=model, interactive=True, output_dir=str(out)),
                       thread_id="ask", db=db, ask=lambda q: "yes" if q["kind"] == "plan" else None)
    assert paused["interrupt"]["iteration"] == 5 and not out.exists()

    asked = []
    final = await resume("ask", db=db, ask=lambda q: asked.append(q) or "add must return a + b")
    assert [q["iteration"] for q in asked] == [5]
    assert final["status"] == "passed" and (out / "adder.py").read_text() == GOOD
