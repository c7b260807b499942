"""`devlooper bench` for real: the bundled suite replayed offline (real sandboxes, real
pytest and cargo, real checkpoints), its acceptance checks, --baseline, a bench killed
mid-way and continued, and imported Exercism exercises whose hidden tests run."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import jsonschema_rs
import pytest

from devlooper.bench.acceptance import run_acceptance
from devlooper.bench.exercism import import_exercises
from devlooper.bench.results import published_schema
from devlooper.bench.suite import bundled_suite, load_suite
from devlooper.templates import get_template

EXERCISM = Path(__file__).parents[1] / "fixtures" / "exercism"
needs_cargo = pytest.mark.skipif(shutil.which("cargo") is None, reason="the rust task needs cargo")
needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="the react task needs npm")


def bench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devlooper", "bench", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def verdicts(results: dict) -> dict[str, str]:
    return {t["name"]: t["verdict"] for t in results["tasks"]}


@needs_cargo
@needs_npm
def test_the_bundled_suite_runs_offline_and_baseline_shows_the_loops_gain(tmp_path: Path):
    loop = bench("--out", str(tmp_path / "loop"), "--concurrency", "2")
    assert loop.returncode == 0, loop.stderr + loop.stdout
    results = json.loads((tmp_path / "loop" / "results.json").read_text())
    assert verdicts(results) == {
        "fizzbuzz_rust": "accepted", "greeting_react": "accepted", "roman": "hidden_tests_fail",
        "slugify": "accepted", "stats_improve": "accepted", "wordfreq": "failed",
    }, loop.stdout + json.dumps([(t["name"], t["reason"], t["acceptance"]) for t in results["tasks"]])[:6000]
    jsonschema_rs.validate(published_schema(), results)  # the documented schema
    by_name = {t["name"]: t for t in results["tasks"]}
    # Repaired by the loop, and the hidden tests agree.
    assert by_name["slugify"]["verdict"] == "accepted" and by_name["slugify"]["iterations"] == 2
    # Green on its own tests, red on the hidden ones: reported as such, with the test that caught it.
    roman = by_name["roman"]
    assert roman["status"] == "passed" and roman["verdict"] == "hidden_tests_fail"
    assert roman["acceptance"]["hidden_failures"] == ["tests/test_acceptance_roman.py::test_subtractive_notation"]
    # Gives up, and its output fails the hidden tests too.
    assert by_name["wordfreq"]["status"] == "gave_up" and by_name["wordfreq"]["verdict"] == "failed"
    assert by_name["fizzbuzz_rust"]["verdict"] == "accepted"
    # Improve mode: the task's starting project is repaired.
    assert by_name["stats_improve"]["verdict"] == "accepted" and by_name["stats_improve"]["iterations"] == 2
    assert by_name["greeting_react"]["verdict"] == "accepted"
    assert results["totals"]["accepted"] == 4 and results["totals"]["hidden_tests_fail"] == 1
    assert all(t["input_tokens"] > 0 and t["calls"] > 0 for t in results["tasks"])
    assert "own tests pass, hidden fail" in loop.stdout and "accepted 4/6" in loop.stdout
    page = (tmp_path / "loop" / "results.html").read_text()
    assert 'data-task="roman" data-verdict="hidden_tests_fail"' in page and "<script" not in page
    # Each output is the run's own, manifest included (what the acceptance check installed from).
    assert (tmp_path / "loop" / "outputs" / "slugify" / "requirements.txt").is_file()

    base = bench("--out", str(tmp_path / "base"), "--baseline")
    assert base.returncode == 0, base.stderr + base.stdout
    baseline = json.loads((tmp_path / "base" / "results.json").read_text())
    jsonschema_rs.validate(published_schema(), baseline)
    assert baseline["mode"] == "baseline" and all(t["iterations"] == 1 for t in baseline["tasks"])
    assert verdicts(baseline)["slugify"] == "failed"  # no repair: the first generation's bug stays
    assert verdicts(baseline)["stats_improve"] == "failed"
    assert baseline["totals"]["accepted"] < results["totals"]["accepted"]

    compared = bench("compare", str(tmp_path / "base" / "results.json"), str(tmp_path / "loop" / "results.json"),
                     "--json")
    assert compared.returncode == 0, compared.stderr
    changes = {t["name"]: t["change"] for t in json.loads(compared.stdout)["tasks"]}
    assert changes["slugify"] == "fixed" and changes["roman"] == "same"


def _checkpoints(db: Path, thread_id: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from checkpoints where thread_id = ?", (thread_id,)).fetchone()[0]


def test_a_bench_killed_mid_way_continues_without_redoing_finished_tasks(tmp_path: Path):
    out = tmp_path / "b"
    python_tasks = ["--task", "roman", "--task", "slugify", "--task", "wordfreq"]
    cmd = [sys.executable, "-m", "devlooper", "bench", "--out", str(out), *python_tasks]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results_file = out / "results.json"
    deadline = time.monotonic() + 300
    finished: list[dict] = []
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            finished = json.loads(results_file.read_text())["tasks"]
        except (FileNotFoundError, json.JSONDecodeError):
            finished = []
        if finished:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    before = json.loads(results_file.read_text())
    assert 1 <= len(before["tasks"]) < 3, "the bench was to be killed after its first task"
    threads = before["threads"]
    kept = {t["name"]: t for t in before["tasks"]}
    counts = {name: _checkpoints(out / "checkpoints.sqlite", threads[name]) for name in kept}

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    after = json.loads(results_file.read_text())
    assert after["threads"] == threads  # a cut-off task continued its own thread
    assert {t["name"] for t in after["tasks"]} == {"roman", "slugify", "wordfreq"} and after["finished_at"]
    for name, entry in kept.items():
        assert next(t for t in after["tasks"] if t["name"] == name) == entry  # not run again
        assert _checkpoints(out / "checkpoints.sqlite", threads[name]) == counts[name]
    assert verdicts(after) == {"roman": "hidden_tests_fail", "slugify": "accepted", "wordfreq": "failed"}


def test_a_folder_of_another_bench_is_refused(tmp_path: Path):
    first = bench("--out", str(tmp_path / "b"), "--task", "roman")
    assert first.returncode == 0, first.stderr
    other = bench("--out", str(tmp_path / "b"), "--task", "roman", "--baseline")
    assert other.returncode == 2 and "another bench" in other.stderr


EXERCISES = [
    pytest.param("python", "two_fer.py", ".meta/example.py", id="python"),
    pytest.param("javascript", "two-fer.js", ".meta/proof.ci.js", id="javascript"),
    pytest.param("rust", "src/lib.rs", ".meta/example.rs", id="rust", marks=needs_cargo),
]


@pytest.mark.parametrize(("track", "solution", "example"), EXERCISES)
def test_imported_exercism_exercises_have_hidden_tests_that_run(tmp_path: Path, track, solution, example):
    if track == "javascript" and shutil.which("npm") is None:
        pytest.skip("the javascript track needs npm")
    import_exercises(EXERCISM / track, tmp_path)
    task = load_suite(tmp_path).tasks[0]
    exercise = next((EXERCISM / track).glob("exercises/practice/*"))
    template = get_template(task.template)
    right = asyncio.run(run_acceptance({solution: (exercise / example).read_text()}, task.hidden, template))
    assert right.passed, right.output
    assert right.tests_passed == 3  # every test ran: none left skipped (xtest) or ignored (#[ignore])
    stub = asyncio.run(run_acceptance({solution: (exercise / solution).read_text()}, task.hidden, template))
    assert not stub.passed and len(stub.hidden_failures) == 3


def test_an_output_that_skips_the_hidden_tests_is_not_accepted(tmp_path: Path):
    task = next(t for t in load_suite(bundled_suite()).tasks if t.name == "roman")
    own = "from roman import to_roman\n\n\ndef test_three():\n    assert to_roman(3) == 'III'\n"
    files = {"roman.py": "def to_roman(n):\n    return 'I' * n\n", "tests/test_own.py": own}
    template = get_template("python")
    # Its own configuration keeps pytest away from any other test file: green, with nothing hidden run.
    gaming = {**files, "tests/conftest.py": "collect_ignore_glob = ['test_acceptance*']\n"}
    checked = asyncio.run(run_acceptance(gaming, task.hidden, template))
    assert checked.exit_code == 0 and not checked.passed
    assert checked.hidden_not_run == ["tests/test_acceptance_roman.py"]
    honest = asyncio.run(run_acceptance(files, task.hidden, template))
    assert honest.hidden_not_run == [] and honest.hidden_failures  # the hidden tests ran, and caught it
