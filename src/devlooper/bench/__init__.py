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

from .results import BenchResults, TaskResult, load_results
from .run import BenchSettings, run_bench
from .suite import Suite, Task, bundled_suite, load_suite, load_task

__all__ = [
    "BenchResults", "BenchSettings", "Suite", "Task", "TaskResult", "bundled_suite", "load_results", "load_suite",
    "load_task", "run_bench",
]
