"""The state is the truth: after every step that ran code, on every backend, the
sandbox's project files equal the state's files.

Scripted runs go through commands that rewrite a file in place (``sed -i``, a
python one-liner), a code generator that creates a file, a command that makes
a file that cannot be a project file, a command and a plan that delete files,
an install, and a test that rewrites its fixture and leaves a scratch file.
The graph stops after every node (``interrupt_after``) so the live sandbox is
compared with the checkpointed state at each step.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from tests import sdk_fakes

from devlooper import Context, ReplayChatModel, builder
from devlooper.sandboxes import e2b as e2b_backend
from devlooper.sandboxes import modal as modal_backend
from devlooper.sandboxes import pool
from devlooper.sandboxes.workspace import ignored
from devlooper.templates import get_template

TEMPLATE_TOML = """\
name = "checks"
description = "python3 scripts as tests, no packages needed"
runtime = "generic"
image = "python:3.11-slim"
install_command = "echo {packages} >> $DEVLOOPER_ENV/installed"
test_command = "python3 check.py"
manifest = "none"
ignore = ["__pycache__"]
"""

BAD = "def add(a, b):\n    return a-b\n"
CHECK = """\
from pathlib import Path

# A test that rewrites its fixture and leaves a file behind: the state must not see either.
Path("fixtures/data.txt").write_text("rewritten by the test\\n")
Path("scratch.txt").write_text("left by the test\\n")

from calc import add
import generated

assert generated.VALUE == 1
assert add(2, 3) == 5, add(2, 3)
print("all good")
"""
PROJECT = {
    "notes": "an adder and a script that checks it",
    "files": [
        {"path": "calc.py", "purpose": "add"},
        {"path": "check.py", "purpose": "the checks"},
        {"path": "fixtures/data.txt", "purpose": "a fixture"},
        {"path": "notes.txt", "purpose": "notes"},
        {"path": "stale.txt", "purpose": "junk"},
    ],
    "packages": [],
}
FORMAT = "python3 -c \"import pathlib; p = pathlib.Path('calc.py'); p.write_text(p.read_text().replace('a-b', 'a + b'))\""
SED = "sed -i 's/^draft$/final/' fixtures/data.txt"
GENERATE = "mkdir -p gen && printf 'VALUE = 1\\n' > generated.py && printf 'x = 1\\n' > gen/extra.py"
BLOB = "printf '\\377\\376' > blob.bin && ln -s /etc/passwd passwd.txt"
FIX_BY_COMMANDS = {
    "summary": "format, generate, clean up",
    "actions": [
        {"kind": "delete_file", "path": "stale.txt", "instructions": "junk"},
        {"kind": "command", "command": FORMAT},
        {"kind": "command", "command": SED},
        {"kind": "install", "packages": ["somepkg"]},
        {"kind": "command", "command": GENERATE},
        {"kind": "command", "command": "rm notes.txt"},
        {"kind": "command", "command": BLOB},
    ],
}


def replies(**more) -> dict:
    return {
        "plan_project": PROJECT,
        "generate_file:calc.py": BAD,
        "generate_file:check.py": CHECK,
        "generate_file:fixtures/data.txt": "draft\n",
        "generate_file:notes.txt": "notes\n",
        "generate_file:stale.txt": "stale\n",
        "diagnose:1": "add subtracts and generated.py is missing",
        "plan:1": FIX_BY_COMMANDS,
        **more,
    }


@pytest.fixture
def template(tmp_path: Path) -> str:
    path = tmp_path / "checks.toml"
    path.write_text(TEMPLATE_TOML)
    return str(path)


@pytest.fixture(params=["local", "e2b", "modal"])
def backend(request, monkeypatch) -> str:
    if request.param == "e2b":
        fake = sdk_fakes.fake_e2b_module()
        monkeypatch.setattr(e2b_backend, "_sdk", lambda: fake)
        monkeypatch.setenv("E2B_API_KEY", "e2b-test")
    elif request.param == "modal":
        fake = sdk_fakes.fake_modal_module()
        monkeypatch.setattr(modal_backend, "_sdk", lambda: fake)
    return request.param


async def sandbox_files(run_id: str) -> dict[str, str] | None:
    """The project files of the run's live sandbox (None when it has none), read raw."""
    box = pool.live(run_id)
    if box is None:
        return None
    entries = await box.list_project()
    return {
        e.path: (await box.read_project_bytes(e.path)).decode() if e.kind == "file" else f"<{e.kind}>"
        for e in entries
    }


async def run_checking_every_step(template: str, model_replies: dict, **context) -> tuple[dict, list[str]]:
    """Run the graph one node at a time; after each, the live sandbox must equal the state."""
    graph = builder.compile(checkpointer=InMemorySaver(), interrupt_after="*")
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    ctx = Context(chat_model=ReplayChatModel.from_replies(model_replies), template=template, **context)
    payload: dict | None = {"prompt": "an adder"}
    checked, step = [], "generate"
    try:
        while True:
            await graph.ainvoke(payload, config, context=ctx)
            payload = None
            snapshot = await graph.aget_state(config)
            values = snapshot.values
            live = await sandbox_files(values.get("run_id", ""))
            if live is not None:
                patterns = get_template(template).not_project()
                want = {p: c for p, c in values["files"].items() if not ignored(p, patterns)}
                assert live == want, f"after {step}: the sandbox differs from the state"
                checked.append(step)
            if not snapshot.next:
                return values, checked
            step = ",".join(snapshot.next)
    finally:
        await pool.release_all()


async def test_after_every_step_the_sandbox_equals_the_state(backend, template, tmp_path):
    out = tmp_path / "out"
    state, checked = await run_checking_every_step(template, replies(), sandbox=backend, output_dir=str(out))
    assert state["status"] == "passed", state["test_runs"][-1]["output"]
    # The sandbox was live, and compared, after each step that ran code or followed one
    # (from generate on: its environment is built while the model writes the files).
    assert checked[:6] == ["generate", "test", "diagnose", "plan", "apply", "test"]

    files = state["files"]
    assert files["calc.py"] == "def add(a, b):\n    return a + b\n"  # the formatter's fix is in the state
    assert files["fixtures/data.txt"] == "final\n"  # sed -i's edit too, not the test's rewrite
    assert files["generated.py"] == "VALUE = 1\n"
    assert files["gen/extra.py"] == "x = 1\n"
    for gone in ("stale.txt", "notes.txt", "scratch.txt", "blob.bin", "passwd.txt"):
        assert gone not in files
    reasons = {e["path"]: e["reason"] for e in state["edits"]}
    assert reasons["calc.py"] == f"made by command `{FORMAT}`"
    assert reasons["generated.py"] == f"made by command `{GENERATE}`"
    assert reasons["notes.txt"] == "made by command `rm notes.txt`"
    blob = next(r for r in state["action_results"] if r["target"] == BLOB)
    assert "blob.bin was not taken" in blob["output"] and "UTF-8" in blob["output"]
    assert "passwd.txt was not taken" in blob["output"] and "link" in blob["output"]

    # What finish wrote is exactly what the last green test saw.
    written = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file() and ".devlooper" not in p.parts}
    assert written == files
    report = json.loads((out / ".devlooper" / "report.json").read_text())
    assert report["status"] == "passed" and report["files"] == sorted(files)


async def test_a_command_that_fixes_the_code_reaches_the_output(template, tmp_path):
    """Before: the tests went green on the sandbox's copy and the output held the bug."""
    out = tmp_path / "out"
    plan = {"summary": "fix by command", "actions": [
        {"kind": "command", "command": FORMAT},
        {"kind": "command", "command": "printf 'VALUE = 1\\n' > generated.py"},
    ]}
    state, _ = await run_checking_every_step(template, replies(**{"plan:1": plan}), output_dir=str(out))
    assert state["status"] == "passed"
    assert (out / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert (out / "generated.py").read_text() == "VALUE = 1\n"


async def test_two_concurrent_runs_in_one_process_both_finish(template, tmp_path):
    """A run that ends releases its own sandbox only, never the other run's."""
    from devlooper.runner import run

    slow = CHECK.replace("print(", "import time; time.sleep(3); print(")
    plan = {"summary": "fix", "actions": [
        {"kind": "command", "command": FORMAT},
        {"kind": "command", "command": "printf 'VALUE = 1\\n' > generated.py"},
    ]}
    db = tmp_path / "shared.sqlite"

    async def one(name: str, check: str) -> dict:
        model = ReplayChatModel.from_replies(replies(**{"generate_file:check.py": check, "plan:1": plan}))
        ctx = Context(chat_model=model, template=template, output_dir=str(tmp_path / name))
        return await run("an adder", ctx, thread_id=name, db=db)

    fast, slow_run = await asyncio.gather(one("fast", CHECK), one("slow", slow))
    assert fast["status"] == "passed" and slow_run["status"] == "passed", slow_run.get("test_runs")
    assert not pool._live  # and each released its own


async def test_a_paused_run_holds_no_sandbox_and_resumes_by_rebuilding_it(tmp_path):
    from devlooper.runner import run
    from tests.integration.test_cli_loop import cassette as loop_cassette
    from tests.integration.test_loop import GOOD
    from tests.integration.test_loop_memory import fix

    model = loop_cassette(tmp_path, **{"plan:5": fix("use + as the human said"), "fix_file:5:adder.py": GOOD})
    out = tmp_path / "out"
    live_while_paused = []

    def ask(question: dict) -> str:
        live_while_paused.append(set(pool._live))
        return "yes" if question["kind"] == "plan" else "add must return a + b"

    final = await run("a tiny library", Context(model=model, interactive=True, output_dir=str(out)),
                      thread_id="pause", db=tmp_path / "db.sqlite", ask=ask)
    assert live_while_paused == [set(), set()]  # nothing held while a human thinks (the plan, the loop)
    assert final["status"] == "passed" and (out / "adder.py").read_text() == GOOD
    assert final["iteration"] == 6  # the test after the answer ran in a rebuilt sandbox
