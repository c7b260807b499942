"""Prompt size per model call over a long run: it must stay flat.

A scripted model drives the real loop (local sandbox, pytest) for ITERATIONS
iterations of a project of FILES modules plus one 5,000-line module; the test
never passes, every iteration patches the large module (a new line each time)
and the history grows. Printed per iteration: the characters and tokens of the
diagnose, plan and fix_file prompts, and last/first ratios (flat means ~1).

    PYTHONPATH=src .venv/bin/python benchmarks/prompt_size.py [ITERATIONS] [FILES]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from collections import defaultdict

from langgraph.checkpoint.memory import InMemorySaver

from devlooper import Context, ReplayChatModel, builder
from devlooper.prompts import size_of
from devlooper.sandboxes.pool import release_all

BIG = "".join(
    f'def helper_{i}(x):\n    """Add {i} to x: one of the many helpers of this module."""\n    return x + {i}\n\n'
    for i in range(1_250)
) + "def compute():\n    return -1\n"
TESTS = "from big import compute\n\n\ndef test_compute():\n    assert compute() == 1\n"


async def measure(iterations: int, modules: int) -> dict[str, dict[int, tuple[int, int]]]:
    files = {f"pkg/mod_{i}.py": f"def f_{i}(x):\n    return x * {i}\n" * 40 for i in range(modules)}
    plan = {"notes": "a big project", "files": [{"path": p, "purpose": "code"} for p in [*files, "big.py", "tests/test_big.py"]]}
    sizes: dict[str, dict[int, tuple[int, int]]] = defaultdict(dict)

    def seen(step: str, reply):
        def answer(messages):
            iteration = len(sizes[step]) + 1
            sizes[step][iteration] = (sum(len(m.content) for m in messages), size_of(messages))
            return reply(iteration) if callable(reply) else reply

        return answer

    fix = {"summary": "fix compute", "actions": [{"kind": "fix_file", "path": "big.py", "instructions": "compute must return 1"}]}
    replies = {
        "plan_project": plan,
        **{f"generate_file:{p}": c for p, c in files.items()},
        "generate_file:big.py": BIG,
        "generate_file:tests/test_big.py": TESTS,
        "diagnose:*": seen("diagnose", "compute returns the wrong value " * 20),
        "plan:*": seen("plan", fix),
        # Each patch adds a line and leaves the bug: the history and the edits grow.
        "fix_file:*": seen("fix_file", lambda i: f"<<<<<<< SEARCH\ndef compute():\n=======\n# attempt {i}\ndef compute():\n>>>>>>> REPLACE\n"),
    }
    graph = builder.compile(checkpointer=InMemorySaver())
    ctx = Context(chat_model=ReplayChatModel.from_replies(replies), max_iterations=iterations + 1,
                  loop_window=iterations + 2, output_dir=tempfile.mkdtemp())
    try:
        await graph.ainvoke({"prompt": "a big project"}, {"configurable": {"thread_id": uuid.uuid4().hex}}, context=ctx)
    finally:
        await release_all()
    return sizes


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    modules = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    sizes = asyncio.run(measure(iterations, modules))
    steps = ("diagnose", "plan", "fix_file")
    print(f"prompt size per call, {iterations} iterations, {modules} modules + a 5,000-line module")
    print("iteration " + "".join(f"{s + ' chars':>16}{s + ' tokens':>17}" for s in steps))
    for it in range(1, iterations + 1):
        row = "".join(f"{sizes[s].get(it, (0, 0))[0]:>16}{sizes[s].get(it, (0, 0))[1]:>17}" for s in steps)
        print(f"{it:>9} {row}")
    for s in steps:
        first, last = sizes[s][1][0], sizes[s][max(sizes[s])][0]
        print(f"{s}: last/first characters = {last / first:.2f}")


if __name__ == "__main__":
    main()
