"""The CLI's side of the ladder: guidance typed at the terminal, stuck exits 1, --keep-best."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devlooper import cli
from tests.integration.test_loop import ADDER_PLAN, BAD, GOOD, TESTS
from tests.integration.test_loop_memory import TIMES, fix


def cassette(tmp_path: Path, **calls) -> str:
    entries = {
        "plan_project": ADDER_PLAN,
        "generate_file:adder.py": BAD,
        "generate_file:tests/test_adder.py": TESTS,
        "diagnose:*": "add is wrong",
        "plan:*": fix("multiply"),
        "fix_file:*": TIMES,
        **calls,
    }
    path = tmp_path / "cassette.json"
    # Exact keys are tried before patterns, so later iterations can be scripted apart.
    path.write_text(json.dumps({"version": 1, "calls": [{"key": k, "reply": v} for k, v in entries.items()]}))
    return f"replay:{path}"


def run_cli(capsys, tmp_path: Path, model: str, *flags: str) -> tuple[int, str]:
    out = tmp_path / "out"
    code = cli.main(["run", "a tiny library", "--model", model, "--output", str(out),
                     "--db", str(tmp_path / "db.sqlite"), *flags])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(autouse=True)
def _a_terminal(monkeypatch):
    # The scripted answers stand in for a person at a terminal (pytest's stdin is not one).
    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: True)


def approving_plans(answer):
    """An answer function that approves the generation plan and gives ``answer`` elsewhere."""

    def respond(prompt: str = "") -> str:
        return "" if "plan>" in prompt else answer(prompt)

    return respond


@pytest.fixture(autouse=True)
def _console_width():
    width = cli.console.width
    cli.console.width = 1_000  # one line per message, whatever the terminal
    yield
    cli.console.width = width


def test_interactive_asks_at_the_terminal_and_uses_the_answer(capsys, tmp_path, monkeypatch):
    asked: list[str] = []

    def answer(prompt: str = "") -> str:
        asked.append(prompt)
        return "add must return a + b"

    monkeypatch.setattr(cli.console, "input", approving_plans(answer))
    model = cassette(tmp_path, **{"plan:5": fix("use + as the human said"), "fix_file:5:adder.py": GOOD})
    code, text = run_cli(capsys, tmp_path, model, "--interactive")
    assert code == 0, text
    assert len(asked) == 1 and "guidance" in asked[0]
    assert "stuck in a loop at run 5" in text and "What should it try instead?" in text
    assert "guidance: add must return a + b" in text
    assert (tmp_path / "out" / "adder.py").read_text() == GOOD
    report = json.loads((tmp_path / "out" / ".devlooper" / "report.json").read_text())
    assert [e["rung"] for e in report["loop"]["events"]] == ["warned", "asked"]


def test_an_empty_answer_stops_the_run(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(cli.console, "input", approving_plans(lambda prompt: ""))
    code, text = run_cli(capsys, tmp_path, cassette(tmp_path), "--interactive")
    assert code == 1
    assert "stuck" in text and "still looping after a warning; stopping" in text


def test_end_of_input_or_no_terminal_leaves_the_run_paused_and_resumable(capsys, tmp_path, monkeypatch):
    def eof(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr(cli.console, "input", approving_plans(eof))
    code, text = run_cli(capsys, tmp_path, cassette(tmp_path), "--interactive", "--thread-id", "eof")
    assert code == cli.PAUSED, text
    assert "paused (stuck)" in text and "devlooper resume eof" in text
    assert not (tmp_path / "out").exists()
    # Not a terminal: nobody is asked, nothing hangs; the run stays paused where it was.
    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: False)
    code, text = run_cli_resume(capsys, tmp_path, "eof")
    assert code == cli.PAUSED and "paused (stuck)" in text
    # A script answers with --answer.
    model = cassette(tmp_path, **{"plan:5": fix("use + as the human said"), "fix_file:5:adder.py": GOOD})
    code, text = run_cli_resume(capsys, tmp_path, "eof", "--answer", "add must return a + b", "--model", model)
    assert code == 0, text
    assert (tmp_path / "out" / "adder.py").read_text() == GOOD


def run_cli_resume(capsys, tmp_path: Path, thread: str, *flags: str) -> tuple[int, str]:
    code = cli.main(["resume", thread, "--db", str(tmp_path / "db.sqlite"), *flags])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_without_interactive_a_loop_exits_1_as_stuck_and_keep_best_writes_the_best(capsys, tmp_path):
    code, text = run_cli(capsys, tmp_path, cassette(tmp_path), "--keep-best", "--max-iterations", "9")
    assert code == 1
    assert "loop, model warned:" in text and "stuck: stuck in a loop at run 5" in text
    report = json.loads((tmp_path / "out" / ".devlooper" / "report.json").read_text())
    assert report["status"] == "stuck" and report["iterations"] == 5
    # The confinement the generated code ran under, in the banner and in the report.
    assert "sandbox local · isolation bwrap" in text and report["isolation"] == "bwrap"
    # Run 1 (a - b) and run 2 (a * b) both pass one test: the first stays the best.
    assert report["output"]["iteration"] == 1 and report["output"]["tests_pass"] is False
    assert (tmp_path / "out" / "adder.py").read_text() == BAD


def test_force_lists_what_it_may_replace_and_deletes_nothing(capsys, tmp_path):
    out = tmp_path / "out"
    (out / "notes").mkdir(parents=True)
    (out / "adder.py").write_text("# the user's own adder\n")
    (out / "notes" / "todo.txt").write_text("mine\n")
    code, text = run_cli(capsys, tmp_path, cassette(tmp_path, **{"generate_file:adder.py": GOOD}), "--force")
    assert code == 0, text
    assert "--force: 2 file(s) already in" in text and "adder.py" in text and "notes/todo.txt" in text
    assert "replaced 1 existing file(s): adder.py" in text
    assert (out / "adder.py").read_text() == GOOD
    assert (out / "notes" / "todo.txt").read_text() == "mine\n"  # not the run's: never deleted
    report = json.loads((out / ".devlooper" / "report.json").read_text())
    assert report["output"]["replaced"] == ["adder.py"]


def test_e_at_the_plan_prompt_edits_it_in_the_editor(capsys, tmp_path, monkeypatch):
    import asyncio

    from devlooper.runner import checkpoint_of, compile_graph, open_saver

    answers = iter(["e"])
    monkeypatch.setattr(cli.console, "input", lambda prompt="": next(answers) if "plan>" in prompt else "")
    # An "editor" that rewrites one purpose in the JSON it is given.
    monkeypatch.setenv("EDITOR", "sed -i s/add()/add(a,b)-edited/")
    model = cassette(tmp_path, **{"generate_file:adder.py": GOOD})
    code, text = run_cli(capsys, tmp_path, model, "--interactive", "--thread-id", "edited")
    assert code == 0, text

    async def project() -> dict:
        async with open_saver(tmp_path / "db.sqlite") as saver:
            return (await checkpoint_of(compile_graph(saver), "edited")).values["project"]

    assert asyncio.run(project())["files"][0]["purpose"] == "add(a,b)-edited"
