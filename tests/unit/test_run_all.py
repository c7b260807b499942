"""`make bench` writes the measured block of BENCHMARKS.md; `--only` runs some again."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import run_all  # noqa: E402


def test_only_rewrites_the_benchmarks_it_runs_and_keeps_the_others(tmp_path, monkeypatch):
    page = tmp_path / "BENCHMARKS.md"
    page.write_text("# Benchmarks\n\nanalysis kept\n")
    figures = {"critical_path": "| a | 1.05 |", "cli_run": "| b | 0.10 |"}
    monkeypatch.setattr(run_all, "run_one", lambda name, args, timeout: (f"cmd {name}", figures[name]))
    monkeypatch.setattr(sys, "argv", ["run_all", "--output", str(page), "--only", "critical_path", "cli_run"])
    run_all.main()
    figures["cli_run"] = "| b | 0.09 |"
    monkeypatch.setattr(sys, "argv", ["run_all", "--output", str(page), "--only", "cli_run"])
    run_all.main()
    text = page.read_text()
    assert "analysis kept" in text and text.count(run_all.START) == 1 and text.count(run_all.END) == 1
    assert "| a | 1.05 |" in text  # not run again: kept
    assert "| b | 0.09 |" in text and "| b | 0.10 |" not in text
    assert text.index("### critical_path") < text.index("### cli_run")  # in the benchmarks' order
