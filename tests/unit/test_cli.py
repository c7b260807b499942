import pytest

from devlooper import cli


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
