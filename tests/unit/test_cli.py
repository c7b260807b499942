import asyncio
import json
import os
from pathlib import Path

import pytest

from devlooper import cli
from devlooper.runner import CONTEXT_KEY, checkpoint_of, compile_graph, open_saver


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_run_without_a_key_exits_2_naming_the_key(capsys, tmp_path):
    code, text = run_cli(capsys, "run", "a todo app", "--output", str(tmp_path / "o"))
    assert code == 2
    assert "OPENAI_API_KEY" in text and "devlooper demo" in text
    assert not (tmp_path / "o").exists()  # nothing was started


def test_unknown_template_lists_the_known_ones(capsys, tmp_path):
    code, text = run_cli(capsys, "run", "x", "--template", "cobol", "--model", "replay:x.json")
    assert code == 2
    assert "unknown template 'cobol'" in text and "python" in text


def test_unknown_sandbox_lists_the_known_ones(capsys):
    code, text = run_cli(capsys, "run", "x", "--sandbox", "docker")
    assert code == 2
    assert "unknown sandbox 'docker'" in text and "local" in text


def test_non_empty_output_needs_force(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, text = run_cli(capsys, "run", "x", "--output", str(out))
    assert code == 2 and "--force" in text
    assert (out / "keep.txt").read_text() == "precious"


def test_max_iterations_must_be_positive(capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code, text = run_cli(capsys, "run", "x", "--max-iterations", "0")
    assert code == 2 and "--max-iterations" in text


def test_templates_lists_python(capsys):
    code, text = run_cli(capsys, "templates")
    assert code == 0 and text.startswith("python")


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run"])
    assert exit_.value.code == 2


def test_loop_window_must_be_at_least_2(capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code, text = run_cli(capsys, "run", "x", "--loop-window", "1")
    assert code == 2 and "--loop-window" in text


def test_loop_flags_reach_the_context(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    args = cli._parser().parse_args(
        ["run", "x", "--interactive", "--keep-best", "--loop-window", "4", "--output", str(tmp_path / "o")]
    )
    ctx = cli._context(args)
    assert (ctx.interactive, ctx.keep_best, ctx.loop_window) == (True, True, 4)


def test_loop_flags_fall_back_to_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("DEVLOOPER_KEEP_BEST", "1")
    monkeypatch.setenv("DEVLOOPER_INTERACTIVE", "false")
    args = cli._parser().parse_args(["run", "x", "--output", str(tmp_path / "o")])
    ctx = cli._context(args)
    assert (ctx.interactive, ctx.keep_best, ctx.loop_window) == (False, True, 3)


def test_model_budget_flags_reach_the_context_and_the_environment_fills_the_rest(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("DEVLOOPER_MAX_TOKENS", "5000")
    args = cli._parser().parse_args(
        ["run", "x", "--structured-output", "json_mode", "--max-prompt-tokens", "8000", "--max-cost", "2.5",
         "--output", str(tmp_path / "o")]
    )
    ctx = cli._context(args)
    assert (ctx.structured_output, ctx.max_prompt_tokens, ctx.max_cost, ctx.max_tokens) == ("json_mode", 8000, 2.5, 5000)


def test_a_cost_budget_needs_the_models_price(capsys, monkeypatch, tmp_path):
    code, text = run_cli(
        capsys, "run", "x", "--model", "openai:llama3", "--base-url", "http://127.0.0.1:9/v1", "--max-cost", "1",
        "--output", str(tmp_path / "o"),
    )
    assert code == 2 and "--prices" in text and "openai:llama3" in text


def test_a_tiny_prompt_budget_is_refused(capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    code, text = run_cli(capsys, "run", "x", "--max-prompt-tokens", "10")
    assert code == 2 and "--max-prompt-tokens" in text


# --- an explicit choice wins over DEVLOOPER_*, on run and on resume ----------------
# The cassette answers nothing, so a run stops at its first model call (exit 2, a
# cassette error) after the runner has recorded the settings it used in the checkpoint.


@pytest.fixture
def wide_console():
    width = cli.console.width
    cli.console.width = 1_000  # one line per message, whatever the terminal
    yield
    cli.console.width = width


def silent_model(tmp_path) -> str:
    cassette = tmp_path / "silent.json"
    cassette.write_text(json.dumps({"version": 1, "calls": []}))
    return f"replay:{cassette}"


def recorded(tmp_path, thread_id: str) -> dict:
    async def read() -> dict:
        async with open_saver(tmp_path / "db.sqlite") as saver:
            snapshot = await checkpoint_of(compile_graph(saver), thread_id)
        return json.loads(snapshot.metadata[CONTEXT_KEY])

    return asyncio.run(read())


def start(capsys, tmp_path, *flags: str) -> tuple[int, str]:
    return run_cli(
        capsys, "run", "x", "--model", silent_model(tmp_path), "--output", str(tmp_path / "o"),
        "--db", str(tmp_path / "db.sqlite"), "--thread-id", "t1", *flags,
    )


def test_an_explicit_sandbox_template_and_budget_beat_the_environment(capsys, tmp_path, monkeypatch, wide_console):
    monkeypatch.setenv("DEVLOOPER_SANDBOX", "e2b")  # would need E2B_API_KEY, which is not set
    monkeypatch.setenv("DEVLOOPER_TEMPLATE", "rust")
    monkeypatch.setenv("DEVLOOPER_MAX_ITERATIONS", "2")
    code, text = start(capsys, tmp_path, "--sandbox", "local", "--template", "python", "--max-iterations", "10")
    assert "E2B" not in text and "no reply for call 'plan_project'" in text, text
    assert "template python · sandbox local" in text and "up to 10 iterations" in text
    used = recorded(tmp_path, "t1")
    assert (used["sandbox"], used["template"], used["max_iterations"]) == ("local", "python", 10)


def test_the_environment_fills_only_what_was_not_given(capsys, tmp_path, monkeypatch, wide_console):
    monkeypatch.setenv("DEVLOOPER_MAX_ITERATIONS", "2")
    start(capsys, tmp_path)
    assert recorded(tmp_path, "t1")["max_iterations"] == 2


def test_resume_keeps_the_recorded_settings_over_the_environment(capsys, tmp_path, monkeypatch, wide_console):
    code, _ = start(capsys, tmp_path, "--max-iterations", "7")
    assert code == 2
    monkeypatch.setenv("DEVLOOPER_SANDBOX", "e2b")
    monkeypatch.setenv("DEVLOOPER_MAX_ITERATIONS", "2")
    monkeypatch.setenv("DEVLOOPER_MODEL", "openai:gpt-4o")  # would need OPENAI_API_KEY
    monkeypatch.setenv("DEVLOOPER_OUTPUT_DIR", str(tmp_path / "elsewhere"))
    code, text = run_cli(capsys, "resume", "t1", "--db", str(tmp_path / "db.sqlite"))
    assert "E2B" not in text and "OPENAI_API_KEY" not in text and "no reply for call 'plan_project'" in text, text
    assert "sandbox local" in text and "up to 7 iterations" in text


def test_resume_options_still_beat_the_recorded_settings(capsys, tmp_path, monkeypatch, wide_console):
    start(capsys, tmp_path, "--max-iterations", "7")
    code, text = run_cli(capsys, "resume", "t1", "--db", str(tmp_path / "db.sqlite"), "--max-iterations", "3")
    assert "up to 3 iterations" in text, text


def test_the_banner_shows_the_isolation(capsys, tmp_path, wide_console):
    _, text = start(capsys, tmp_path)
    assert "isolation bwrap" in text and "unconfined" not in text
    assert recorded(tmp_path, "t1")["isolation"] == "bwrap"


def test_the_banner_warns_when_generated_code_runs_unconfined(capsys, tmp_path, monkeypatch, wide_console):
    monkeypatch.setenv("DEVLOOPER_ISOLATION", "none")
    _, text = start(capsys, tmp_path)
    assert "isolation none" in text and "warning: isolation none: generated code runs unconfined" in text
    assert recorded(tmp_path, "t1")["isolation"] == "none"


def test_a_remote_sandbox_is_shown_as_remote_isolation(capsys, tmp_path, monkeypatch, wide_console):
    monkeypatch.setenv("E2B_API_KEY", "e2b-test")  # the run stops at its first model call, before any sandbox
    _, text = start(capsys, tmp_path, "--sandbox", "e2b")
    assert "sandbox e2b · isolation remote" in text and "unconfined" not in text, text


def test_template_new_offers_no_run_budget_it_would_ignore(capsys, tmp_path):
    # A template draft is bounded by --attempts; a run budget given to it would be silently ignored.
    for option in ("--max-tokens", "--max-cost", "--max-prompt-tokens"):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["template", "new", "Go with go test", "--output", str(tmp_path / "t.toml"), option, "5"])
        assert exit_.value.code == 2
        assert option in capsys.readouterr().err


def test_the_program_leaves_its_objects_to_exit_and_an_embedder_keeps_collecting_them(tmp_path):
    """`devlooper` (argv from sys.argv) freezes the objects it made before the process
    exits, so exit does not walk them; a caller of main(argv) in its own process is left alone."""
    import gc
    import subprocess
    import sys

    probe = ("import gc, sys; from devlooper import cli; sys.argv = ['devlooper', 'templates']; "
             "cli.main(); print(gc.get_freeze_count())")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "DEVLOOPER_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 0
    before = gc.get_freeze_count()
    assert cli.main(["templates"]) == 0
    assert gc.get_freeze_count() == before
