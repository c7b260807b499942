"""The bench without a sandbox: suites, the results schema and totals, compare, the table,
and what the Exercism importer makes of each track's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devlooper.bench import load_suite, load_task
from devlooper.bench.compare import compare
from devlooper.bench.exercism import import_exercises
from devlooper.bench.render import comparison_table, html, table
from devlooper.bench.results import BenchResults, TaskResult, load_results, published_schema, schema, totals_of
from devlooper.bench.run import BenchSettings, task_context
from devlooper.bench.suite import bundled_suite
from devlooper.cli import main
from devlooper.errors import ConfigError

EXERCISM = Path(__file__).parents[1] / "fixtures" / "exercism"


def _task(path: Path, toml: str = 'template = "python"\n', prompt: str = "a thing", hidden: bool = True) -> Path:
    path.mkdir(parents=True)
    (path / "task.toml").write_text(toml)
    if prompt is not None:
        (path / "prompt.md").write_text(prompt)
    if hidden:
        (path / "hidden" / "tests").mkdir(parents=True)
        (path / "hidden" / "tests" / "test_h.py").write_text("def test_x():\n    assert True\n")
    return path


def result(name: str, verdict: str, status: str | None = "passed", iterations: int = 1, cost: float | None = 0.01,
           tokens: int = 100) -> TaskResult:
    return TaskResult(
        name=name, template="python", thread_id=f"t-{name}", verdict=verdict, status=status, reason="r",
        iterations=iterations, wall_seconds=1.5, input_tokens=tokens, output_tokens=tokens // 2, calls=2,
        cost_usd=cost, acceptance=None,
    )


def bench(tasks: list[TaskResult], mode: str = "loop") -> BenchResults:
    return BenchResults(suite="s", suite_path="/s", mode=mode, model="m", sandbox="local", max_iterations=None,
                        started_at="t", finished_at="t", threads={t.name: t.thread_id for t in tasks}, tasks=tasks,
                        totals=totals_of(tasks))


# --- suites ------------------------------------------------------------------------
def test_the_bundled_suite_loads_with_a_cassette_per_task():
    suite = load_suite(bundled_suite())
    assert len(suite.tasks) >= 3
    assert all(t.cassette is not None and t.hidden and t.prompt for t in suite.tasks)
    assert {t.template for t in suite.tasks} >= {"python", "rust"}
    assert any(t.project for t in suite.tasks)  # an improve-mode task


@pytest.mark.parametrize(
    ("toml", "prompt", "hidden", "says"),
    [
        ("template = \n", "p", True, "not valid TOML"),
        ('colour = "red"\ntemplate = "python"\n', "p", True, "unknown key"),
        ("max_iterations = 2\n", "p", True, "must name its template"),
        ('template = "cobol"\n', "p", True, "unknown template"),
        ('template = "python"\nmax_iterations = 0\n', "p", True, "max_iterations"),
        ('template = "python"\n', "  ", True, "prompt.md"),
        ('template = "python"\n', "p", False, "no acceptance tests"),
    ],
)
def test_a_broken_task_is_one_clear_error_naming_it(tmp_path: Path, toml, prompt, hidden, says):
    folder = _task(tmp_path / "t1", toml, prompt, hidden)
    with pytest.raises(ConfigError, match=says) as err:
        load_task(folder)
    assert str(folder) in str(err.value)


def test_a_suite_subset_must_name_tasks_it_has(tmp_path: Path):
    _task(tmp_path / "a")
    _task(tmp_path / "b")
    (tmp_path / "notes").mkdir()  # not a task: no task.toml
    assert [t.name for t in load_suite(tmp_path).tasks] == ["a", "b"]
    assert [t.name for t in load_suite(tmp_path, ["b"]).tasks] == ["b"]
    with pytest.raises(ConfigError, match="no task zz"):
        load_suite(tmp_path, ["zz"])


def test_a_starting_project_makes_an_improve_task(tmp_path: Path):
    folder = _task(tmp_path / "fix")
    (folder / "project").mkdir()
    (folder / "project" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    assert load_task(folder).project == {"calc.py": "def add(a, b):\n    return a - b\n"}


def test_replay_needs_a_cassette_and_baseline_is_one_test_run(tmp_path: Path):
    task = load_task(_task(tmp_path / "a", 'template = "python"\nmax_iterations = 4\n'))
    with pytest.raises(ConfigError, match="no cassette"):
        task_context(task, BenchSettings(model="replay", out=tmp_path))
    settings = BenchSettings(model="openai:x", out=tmp_path)
    assert task_context(task, settings).max_iterations == 4  # the task's own limit
    assert task_context(task, BenchSettings(model="openai:x", out=tmp_path, max_iterations=7)).max_iterations == 7
    base = task_context(task, BenchSettings(model="openai:x", out=tmp_path, baseline=True, max_iterations=7))
    assert base.max_iterations == 1 and base.output_dir == str(tmp_path / "outputs" / "a")


# --- results -----------------------------------------------------------------------
def test_the_published_schema_is_the_one_the_models_generate():
    assert published_schema() == schema()


def test_totals_count_verdicts_and_endings():
    tasks = [result("a", "accepted"), result("b", "hidden_tests_fail"), result("c", "failed", "gave_up", 3),
             result("d", "error", None, 0, None)]
    s = totals_of(tasks)
    assert (s.tasks, s.accepted, s.hidden_tests_fail, s.errors) == (4, 1, 1, 1)
    assert s.pass_rate == 0.25 and s.iterations_mean == 1.25
    assert s.endings == {"error": 1, "gave_up": 1, "passed": 2}
    assert s.cost_usd is None  # one task's cost is unknown: so is the sum
    assert totals_of(tasks[:2]).cost_usd == pytest.approx(0.02)


def test_a_results_file_that_is_not_one_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({"suite": "x"}))
    with pytest.raises(ConfigError, match="not a devlooper bench results file"):
        load_results(bad)


def test_the_table_and_page_show_each_task_and_the_totals():
    r = bench([result("a", "accepted"), result("b", "hidden_tests_fail")])
    text = table(r)
    assert "own tests pass, hidden fail" in text and "accepted 1/2 (50%)" in text
    page = html(r)
    assert 'data-task="b" data-verdict="hidden_tests_fail"' in page
    assert "<script" not in page and "http" not in page  # self-contained


def test_compare_names_what_was_fixed_and_broken_on_common_tasks():
    a = bench([result("x", "failed"), result("y", "accepted"), result("only_a", "accepted")], "baseline")
    b = bench([result("x", "accepted"), result("y", "failed"), result("only_b", "failed")])
    c = compare(a, b)
    changes = {d.name: d.change for d in c.tasks}
    assert changes == {"x": "fixed", "y": "broken", "only_a": "only in A", "only_b": "only in B"}
    assert (c.common, c.a_accepted, c.b_accepted) == (2, 1, 1)
    assert "fixed 1 · broken 1" in comparison_table(c)


def test_bench_compare_on_the_command_line(tmp_path: Path, capsys):
    for name, verdict in (("a.json", "failed"), ("b.json", "accepted")):
        (tmp_path / name).write_text(bench([result("x", verdict)]).model_dump_json())
    assert main(["bench", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"][0]["change"] == "fixed"
    assert main(["bench", "compare", str(tmp_path / "a.json")]) == 2
    assert "usage: devlooper bench compare" in capsys.readouterr().err


# --- the Exercism importer ---------------------------------------------------------------
def test_exercism_tracks_become_tasks(tmp_path: Path):
    for track in ("python", "javascript", "rust"):
        done = import_exercises(EXERCISM / track, tmp_path / track)
        assert [d.track for d in done] == [track]
    py = load_suite(tmp_path / "python").tasks[0]
    assert py.template == "python" and list(py.hidden) == ["tests/two_fer_test.py"]
    assert "One for Do-yun, one for me." in py.prompt and "def two_fer(name):" in py.prompt  # instructions, stub
    assert "return f\"One for" not in py.prompt  # never the example solution
    js = load_suite(tmp_path / "javascript").tasks[0]
    assert js.template == "react" and "xtest(" not in js.hidden["two-fer.spec.js"]  # every test runs
    assert js.hidden["two-fer.spec.js"].count("test(") == 3
    rs = load_suite(tmp_path / "rust").tasks[0]
    tests = rs.hidden["tests/raindrops.rs"]
    assert "#[ignore]" not in tests and "use app::*;" in tests and "app::raindrops(3)" in tests
    assert "raindrops(105)" in tests  # the function keeps its name; only the crate path is renamed
    assert "Cargo.toml" not in rs.prompt  # the template's crate, not the exercise's


def test_exercism_import_refuses_to_overwrite_and_bad_exercises(tmp_path: Path):
    import_exercises(EXERCISM / "python", tmp_path / "s")
    with pytest.raises(ConfigError, match="--force"):
        import_exercises(EXERCISM / "python", tmp_path / "s")
    import_exercises(EXERCISM / "python", tmp_path / "s", force=True)
    bad = tmp_path / "bad" / "ex"
    (bad / ".meta").mkdir(parents=True)
    (bad / ".meta" / "config.json").write_text('{"files": {"solution": ["../x.py"], "test": ["t.py"]}}')
    with pytest.raises(ConfigError, match="x.py"):
        import_exercises(bad, tmp_path / "s2")
    with pytest.raises(ConfigError, match="no exercise"):
        import_exercises(tmp_path / "s", tmp_path / "s3")


def test_bench_import_exercism_and_schema_on_the_command_line(tmp_path: Path, capsys):
    assert main(["bench", "import-exercism", str(EXERCISM / "rust"), "--to", str(tmp_path / "s")]) == 0
    assert [t.name for t in load_suite(tmp_path / "s").tasks] == ["raindrops"]
    assert main(["bench", "import-exercism", str(EXERCISM / "rust")]) == 2  # no --to
    assert "usage: devlooper bench import-exercism" in capsys.readouterr().err
    assert main(["bench", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == published_schema()


def test_a_suite_of_ones_own_needs_a_model_named(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.delenv("DEVLOOPER_MODEL", raising=False)
    _task(tmp_path / "s" / "a")
    assert main(["bench", str(tmp_path / "s"), "--out", str(tmp_path / "o")]) == 2
    assert "--model" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing ran, nothing was written


# --- acceptance: every hidden test file must have run ------------------------------------
from devlooper.bench.acceptance import hidden_not_run  # noqa: E402

JUNIT = """<testsuites><testsuite>
<testcase classname="tests.test_own" name="test_a" file="tests/test_own.py"/>
<testcase classname="tests.test_hidden" name="test_b" file="tests/test_hidden.py">{skip}</testcase>
</testsuite></testsuites>"""


def test_a_hidden_file_whose_tests_were_skipped_or_never_collected_did_not_run():
    hidden = {"tests/test_hidden.py": "", "tests/data.json": "{}"}  # data is not a test file
    assert hidden_not_run("junit", "", JUNIT.format(skip=""), hidden) == []
    assert hidden_not_run("junit", "", JUNIT.format(skip="<skipped/>"), hidden) == ["tests/test_hidden.py"]
    assert hidden_not_run("junit", "", JUNIT.replace("test_hidden", "test_other").format(skip=""), hidden) == [
        "tests/test_hidden.py"]
    assert hidden_not_run("junit", "", None, hidden) == []  # no report: cannot tell, the exit code decides


def test_jest_and_cargo_runs_name_the_files_that_ran():
    jest = json.dumps({"testResults": [
        {"name": "/tmp/x/workspace/src/a.test.jsx", "assertionResults": [{"status": "passed"}]},
        {"name": "/tmp/x/workspace/src/b.test.jsx", "assertionResults": [{"status": "pending"}]},
    ]})
    assert hidden_not_run("jest", "", jest, {"src/a.test.jsx": "", "src/b.test.jsx": ""}) == ["src/b.test.jsx"]
    cargo = ("     Running tests/acceptance.rs (target/debug/deps/acceptance-1)\n\nrunning 1 test\n"
             "test plain ... ok\n\ntest result: ok. 1 passed\n"
             "     Running tests/other.rs (target/debug/deps/other-1)\n\nrunning 0 tests\n\ntest result: ok. 0 passed\n")
    assert hidden_not_run("cargo", cargo, None, {"tests/acceptance.rs": "", "tests/other.rs": ""}) == ["tests/other.rs"]
