"""A whole `devlooper run` through the CLI: how long before the first model request,
and how long after the last model reply before the process exits.

    PYTHONPATH=src .venv/bin/python benchmarks/cli_run.py [N]

The model is the real langchain-openai client (``--model openai:... --base-url``)
against a scripted OpenAI-compatible server on loopback (tests/openai_server.py)
that answers the adder session at once and logs when each request arrived and
each reply was sent. Each figure is the median of N fresh processes:

- start -> first request: from just before the process is started to the first
  request the server gets, as a ratio to the bare import of
  ``langgraph.graph, langchain_openai`` measured in the same run (alternated with
  the runs). The goal is <= 1.2 x.
- last reply -> exit: from the last reply sent to the process's exit, less the
  final test run (the one after the fix, which no harness can skip: its duration
  is in the run's report). The goal is <= 0.3 s; it is also given as a ratio to
  the bare import.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.openai_server
from tests.openai_server import ADDER, OpenAIServer, replies_from, step_of  # noqa: E402

IMPORTS = ["-c", "import langgraph.graph, langchain_openai"]


def bare_import(env: dict[str, str]) -> float:
    started = time.time()
    subprocess.run([sys.executable, *IMPORTS], env=env, check=True)
    return time.time() - started


def one_run(env: dict[str, str], tmp: Path, i: int) -> tuple[float, float, float]:
    """(start -> first request, last reply -> exit, the final test run's duration), in seconds."""
    with OpenAIServer(replies_from(ADDER), key=step_of) as server:
        out = tmp / f"out{i}"
        argv = [sys.executable, "-m", "devlooper", "run", "an adder", "--model", "openai:tiny-local",
                "--base-url", server.url, "--output", str(out), "--db", str(tmp / f"db{i}.sqlite"), "--quiet"]
        started = time.time()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        exited = time.time()
        if done.returncode != 0:
            raise SystemExit(f"the run failed:\n{done.stderr[-3000:]}")
        first_request, last_reply = server.received[0], server.replied[-1]
    report = json.loads((out / ".devlooper" / "report.json").read_text())
    assert report["status"] == "passed", report["status"]
    final_test = report["test_runs"][-1]["duration"]
    return first_request - started, exited - last_reply, final_test


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OPENAI_API_KEY": "sk-loopback", "DEVLOOPER_CACHE_DIR": f"{tmp}/cache",
               "XDG_DATA_HOME": f"{tmp}/data"}
        one_run(env, Path(tmp), -1)  # the environment cache is warm from here on
        imports, firsts, tails, tests = [], [], [], []
        for i in range(n):  # alternated, so both see the same load on the machine
            imports.append(bare_import(env))
            first, tail, test = one_run(env, Path(tmp), i)
            firsts.append(first)
            tails.append(tail)
            tests.append(test)
    bare = statistics.median(imports)
    first = statistics.median(firsts)
    after = statistics.median(t - d for t, d in zip(tails, tests))
    print(f"| `devlooper run` against a loopback OpenAI-compatible server (median of {n}) | seconds | × bare import | goal |")
    print("| --- | --- | --- | --- |")
    print(f"| import langgraph.graph, langchain_openai (bare import) | {bare:.2f} | 1.00 | |")
    print(f"| process start → first model request | {first:.2f} | {first / bare:.2f} | ≤ 1.2 × |")
    print(f"| last model reply → process exit, less the final test run | {after:.2f} | {after / bare:.2f} | ≤ 0.3 s |")
    print(f"| (the final test run) | {statistics.median(tests):.2f} | {statistics.median(tests) / bare:.2f} | |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
