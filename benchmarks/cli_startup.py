"""CLI start-up: commands that need no graph, against the bare interpreter and the graph's imports.

``devlooper runs`` and ``devlooper history THREAD`` read a checkpoint database
this script fills first with one finished run (the bundled demo, replayed).

    PYTHONPATH=src .venv/bin/python benchmarks/cli_startup.py [N]

Each figure is the median of N fresh processes. The reference points are a bare
``python -c pass`` and ``import langgraph.graph, langchain_openai`` (what a run
must import anyway); the commands are given as ratios to them, measured in the
same run, so the figures travel between machines.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "devlooper --help": ["-m", "devlooper", "--help"],
    "devlooper templates": ["-m", "devlooper", "templates"],
    "devlooper cache list": ["-m", "devlooper", "cache", "list"],
    "devlooper runs": ["-m", "devlooper", "runs", "--db", "{db}"],
    "devlooper history THREAD": ["-m", "devlooper", "history", "demo", "--db", "{db}"],
    "import devlooper.runner (a run's graph)": ["-c", "import devlooper.runner"],
}
BARE = ["-c", "pass"]
GRAPH = ["-c", "import langgraph.graph, langchain_openai"]


def median_seconds(args: list[str], n: int, env: dict[str, str]) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "DEVLOOPER_CACHE_DIR": cache}
        db = os.path.join(cache, "checkpoints.sqlite")
        subprocess.run([sys.executable, "-m", "devlooper", "demo", "--db", db, "--thread-id", "demo", "--quiet",
                        "--output", os.path.join(cache, "demo")], env=env, stdout=subprocess.DEVNULL, check=True)
        bare = median_seconds(BARE, n, env)
        graph = median_seconds(GRAPH, n, env)
        print(f"| command (median of {n}) | seconds | × bare python | × graph imports |")
        print("| --- | --- | --- | --- |")
        print(f"| python -c pass | {bare:.2f} | 1.00 | {bare / graph:.2f} |")
        print(f"| import langgraph.graph, langchain_openai | {graph:.2f} | {graph / bare:.1f} | 1.00 |")
        for name, args in COMMANDS.items():
            t = median_seconds([a.replace("{db}", db) for a in args], n, env)
            print(f"| {name} | {t:.2f} | {t / bare:.1f} | {t / graph:.2f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
