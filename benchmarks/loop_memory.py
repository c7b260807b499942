"""Cost of loop memory per iteration, and the size of what it adds to a prompt.

Loop memory runs on every test run (a fingerprint) and on every routing,
diagnosis and plan (the detectors, the history, the warning). This measures,
on synthetic state of a long, large run:

- fingerprint: hashing a workspace of FILES files of SIZE characters each;
- detect: the five detectors over ITERATIONS fingerprints (one routing);
- notes: history + warning + guidance text, in characters, for a run of
  ITERATIONS iterations with large edits (it must stay bounded).

    .venv/bin/python benchmarks/loop_memory.py [ITERATIONS] [FILES] [SIZE]
"""

from __future__ import annotations

import statistics
import sys
import time

from devlooper.fingerprint import fingerprint
from devlooper.loops import detect, regression
from devlooper.memory import make_edit
from devlooper.prompts.history import render_history, render_notes


def median_ms(fn, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def synthetic_state(iterations: int, files: int, size: int) -> dict:
    tree = {f"pkg/module_{i}.py": (f"# module {i}\n" + "x = 1\n" * (size // 6)) for i in range(files)}
    runs, fps, plans, edits, events = [], [], [], [], []
    for it in range(1, iterations + 1):
        run = {"iteration": it, "exit_code": 1, "timed_out": False, "output": "E assert 1 == 2\n" * 50, "dropped": 0,
               "duration": 1.0, "passed": 3, "failed": 2,
               "failures": [{"name": f"tests/test_m.py::test_{j}", "message": f"assert {it} == 2"} for j in range(2)]}
        state = {"files": tree, "layers": [], "plans": plans, "edits": edits, "action_results": []}
        runs.append(run)
        fps.append(fingerprint(state, run))
        plans.append({"iteration": it, "summary": f"attempt {it}",
                      "actions": [{"kind": "fix_file", "path": "pkg/module_0.py", "instructions": f"try {it}"}]})
        edits.append(make_edit(it, "pkg/module_0.py", "a\n" * 2000, f"b{it}\n" * 2000, f"try {it}"))
    events.append({"iteration": iterations, "rung": "asked", "detections": [], "guidance": "g" * 10_000})
    return {"prompt": "p", "iteration": iterations, "files": tree, "layers": [], "test_runs": runs,
            "fingerprints": fps, "plans": plans, "edits": edits, "action_results": [], "loop_events": events,
            "best": {"iteration": 1, "passed": 3, "failed": 2}}


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    files = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 20_000
    state = synthetic_state(iterations, files, size)
    run = state["test_runs"][-1]
    fp_ms = median_ms(lambda: fingerprint(state, run))
    detect_ms = median_ms(lambda: detect(state["fingerprints"], 3))
    detections = detect(state["fingerprints"], 3)
    notes = render_notes(state, detections, regression(state))
    history = render_history(state)
    print(f"workspace: {files} files x {size} chars = {files * size / 1e6:.1f} MB; {iterations} iterations")
    print(f"fingerprint (hash workspace, layers, plan, steps): {fp_ms:.1f} ms")
    print(f"detect (five detectors over {iterations} fingerprints): {detect_ms:.2f} ms")
    print(f"history: {len(history)} chars; notes (regression, warning, guidance): {len(notes)} chars")
    print(f"detections: {[d['kind'] for d in detections]}")


if __name__ == "__main__":
    main()
