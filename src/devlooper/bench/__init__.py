"""``devlooper bench``: does the loop make a model write working projects?

A suite of tasks (:mod:`.suite`), each a request with acceptance tests the model
never sees, runs as normal checkpointed runs (:mod:`.run`); after each run its
hidden tests run in a fresh sandbox from the output's own manifest
(:mod:`.acceptance`). The results (:mod:`.results`) go to a JSON file with a
published schema, a table and a self-contained page (:mod:`.render`); two result
files compare task by task (:mod:`.compare`). :mod:`.exercism` turns Exercism
exercises into tasks.
"""

from __future__ import annotations

import importlib
from typing import Any

# Names load on first use: `devlooper bench --help` (and every other command's
# parser, which lists bench) must not import the graph that running a task needs.
_HOMES = {
    "BenchResults": "results", "TaskResult": "results", "load_results": "results",
    "BenchSettings": "run", "run_bench": "run",
    "Suite": "suite", "Task": "suite", "bundled_suite": "suite", "load_suite": "suite", "load_task": "suite",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)


__all__ = [
    "BenchResults", "BenchSettings", "Suite", "Task", "TaskResult", "bundled_suite", "load_results", "load_suite",
    "load_task", "run_bench",
]
