"""Run the benchmarks and write their figures into BENCHMARKS.md (``make bench``).

    PYTHONPATH=src .venv/bin/python benchmarks/run_all.py [--output BENCHMARKS.md] [--only NAME ...]

Each benchmark runs in a fresh process with the command shown. Its output (ratios
and medians, never lone times) replaces the part of BENCHMARKS.md between the
``bench:start`` and ``bench:end`` markers, with the date and the commit it was
measured on, under the machine; the analysis above the markers is kept. With
``--only`` the other benchmarks keep the figures they had.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

# name -> (arguments, what it measures)
BENCHMARKS: dict[str, tuple[list[str], str]] = {
    "critical_path": (["0.5", "5"], "wall time / critical path of a 10-file session with 0.5 s per model call: a replayed model, and langchain-openai against a loopback server"),
    "concurrent_runs": (["8", "0.5"], "8 runs at once, in one process, in 8 processes and through `langgraph dev`, against one run alone"),
    "cli_startup": (["7"], "CLI start-up: commands that need no graph, as ratios to a bare interpreter and to the graph's imports"),
    "cli_run": (["5"], "a whole `devlooper run` against a loopback OpenAI-compatible server: start -> first request, last reply -> exit"),
    "sandbox_latency": (["5"], "local sandbox: create -> first command, one more command (resident process vs one bubblewrap each)"),
    "checkpoint_growth": (["10", "30"], "checkpoint bytes per iteration, SQLite, a realistic verbose run of 10 modules"),
    "loop_overhead": (["5"], "harness overhead of a whole replayed demo run (design to output), divided by its iterations"),
    "iteration_overhead": (["10", "30"], "harness overhead per loop iteration (diagnose, plan, apply, test), tiny and realistic, SQLite and in-memory saver"),
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}){memory}, Python {platform.python_version()}"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def run_one(name: str, args: list[str], timeout: float) -> tuple[str, str]:
    command = f"PYTHONPATH=src {Path(sys.executable).name} benchmarks/{name}.py {' '.join(args)}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        )
        out = done.stdout.strip() if done.returncode == 0 else f"failed (exit {done.returncode}):\n{done.stderr[-2000:]}"
    except subprocess.TimeoutExpired:
        out = f"did not finish within {timeout:.0f} s"
    return command, out


def sections(block: str) -> dict[str, str]:
    """The ``### name`` sections of a block written before, by name."""
    found: dict[str, str] = {}
    for chunk in block.split("\n### ")[1:]:
        name = chunk.split("\n", 1)[0].strip()
        found[name] = "### " + chunk.replace(END, "").rstrip() + "\n"
    return found


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    p.add_argument("--only", nargs="*", default=None, help="run these again; the others keep their last figures")
    p.add_argument("--timeout", type=float, default=1800)
    a = p.parse_args()
    names = a.only or list(BENCHMARKS)
    path = Path(a.output)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    kept = sections(text[text.index(START) : text.index(END)]) if START in text and END in text else {}
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for name in names:
        args, what = BENCHMARKS[name]
        print(f"running {name} ...", file=sys.stderr, flush=True)
        command, out = run_one(name, args, a.timeout)
        body = out if out.lstrip().startswith("|") else f"```\n{out}\n```"
        kept[name] = "\n".join([f"### {name}", "", what + ".", "", f"Measured {today}, commit {commit()}.", "",
                                "```bash", command, "```", "", body, ""])
    parts = [START, "", "## Latest measurements (`make bench`)", "",
             f"On {machine()}; each benchmark says when and at which commit. Load from other",
             "processes shifts the times; the ratios within one benchmark are taken in the same run.", ""]
    parts += [kept[name] for name in BENCHMARKS if name in kept]
    parts.append(END)
    block = "\n".join(parts)
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
