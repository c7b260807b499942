"""A scripted run that a test can kill with SIGKILL inside a chosen node.

``python -m tests.integration.crash_run run DB OUT THREAD [NODE]`` runs the
scenario; with NODE the process stops inside that node (after writing
``DB.inside``, it sleeps) so the caller kills it there. ``... resume DB THREAD``
continues the thread in a new process. Both print the final status.

The scenario goes through every kind of step: generation, a red test that
rewrites its fixture, a plan with a file fix, a command that fixes the code in
place, a code generator and a deletion by command, then a green test.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from pathlib import Path

from devlooper import Context, ReplayChatModel
from devlooper.runner import resume, run

PLAN = {
    "notes": "an adder, its tests and a fixture",
    "files": [
        {"path": "adder.py", "purpose": "add()"},
        {"path": "notes.txt", "purpose": "notes"},
        {"path": "tests/data.txt", "purpose": "fixture"},
        {"path": "tests/test_adder.py", "purpose": "tests"},
    ],
    "packages": [],
}
TESTS = """\
from pathlib import Path

from adder import add


def test_add():
    assert add(2, 3) == 5


def test_generated():
    import generated

    assert generated.VALUE == 1


def test_fixture_is_pristine():
    fixture = Path(__file__).parent / "data.txt"
    assert fixture.read_text() == "pristine\\n"
    fixture.write_text("dirtied by a test\\n")  # the next run must see it pristine again
"""
FORMAT = "sed -i 's/a-b/a + b/' adder.py"
REPLIES = {
    "plan_project": PLAN,
    "generate_file:adder.py": "def add(a, b):\n    return a-b\n",
    "generate_file:notes.txt": "notes\n",
    "generate_file:tests/data.txt": "pristine\n",
    "generate_file:tests/test_adder.py": TESTS,
    "diagnose:1": "add subtracts and generated.py is missing",
    "plan:1": {
        "summary": "document, fix by command, generate",
        "actions": [
            {"kind": "fix_file", "path": "notes.txt", "instructions": "say what changed"},
            {"kind": "command", "command": FORMAT},
            {"kind": "command", "command": "printf 'VALUE = 1\\n' > generated.py && rm notes.txt"},
        ],
    },
    "fix_file:1:notes.txt": "add adds now\n",
}
# Where each node is stopped: a model call it makes, or a function it calls.
BY_REPLY = {"design": "plan_project", "generate": "generate_file:adder.py", "diagnose": "diagnose:1", "plan": "plan:1"}


def stop_inside(node: str, marker: Path) -> dict:
    """Replies (and patches) that make the process wait, once inside ``node``, to be killed."""

    def wait(*_args, **_kwargs):
        marker.write_text(node)
        time.sleep(600)

    replies = dict(REPLIES)
    if node in BY_REPLY:
        replies[BY_REPLY[node]] = wait
    elif node == "apply":  # after the first command changed the sandbox, before the state has it
        apply = importlib.import_module("devlooper.nodes.apply")  # the module: the package exports the node
        settle = apply.settle_step

        async def settle_then_wait(*args, **kwargs):
            result = await settle(*args, **kwargs)
            await asyncio.to_thread(wait)
            return result

        apply.settle_step = settle_then_wait
    elif node == "test":  # after the tests ran (and dirtied the fixture)
        test = importlib.import_module("devlooper.nodes.test")
        test.parse_results = wait
    elif node == "finish":
        finish = importlib.import_module("devlooper.nodes.finish")
        finish.write_output = wait
    else:
        raise SystemExit(f"unknown node {node}")
    return replies


async def main(argv: list[str]) -> str:
    if argv[0] == "run":
        db, out, thread = argv[1:4]
        replies = stop_inside(argv[4], Path(db + ".inside")) if len(argv) > 4 else REPLIES
        ctx = Context(chat_model=ReplayChatModel.from_replies(replies), output_dir=out)
        final = await run("an adder", ctx, thread_id=thread, db=db)
    else:
        db, thread = argv[1:3]
        final = await resume(thread, db=db, chat_model=ReplayChatModel.from_replies(REPLIES))
    return final["status"]


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1:])))
