"""`langgraph dev` serves the graph: schemas for Studio, and a whole run through the SDK.

The real server is started from the repository root (where langgraph.json is),
on a free port (2024 may be taken), with analytics and the version check off,
and stopped by its process group (tests/langgraph_dev.py). The model is a replayed cassette, the sandbox the local
one: everything else (server, queue, checkpoints, blocking-call checks) is real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_loop import BAD, FIX, GOOD, replies
from tests.langgraph_dev import Unavailable, langgraph_dev

httpx = pytest.importorskip("httpx")
langgraph_sdk = pytest.importorskip("langgraph_sdk", reason="the server extra is not installed")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's root: its clients' outputs and cassettes go under it."""
    return tmp_path_factory.mktemp("server-root")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[str]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    try:
        with langgraph_dev(root, log) as url:
            yield url
    except Unavailable as why:
        pytest.skip(str(why))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    finally:
        if os.environ.get("DEVLOOPER_SHOW_SERVER_LOG"):
            print(log.read_text())


async def assistant(client) -> dict:
    [found] = await client.assistants.search(graph_id="devlooper")
    return found


async def test_schemas_give_studio_its_forms(server: str):
    client = langgraph_sdk.get_client(url=server)
    schemas = await client.assistants.get_schemas((await assistant(client))["assistant_id"])
    inputs = schemas["input_schema"]
    assert set(inputs["properties"]) == {"prompt", "template", "project_files"} and inputs["required"] == ["prompt"]
    assert {"status", "reason", "files", "report"} <= set(schemas["output_schema"]["properties"])
    assert {"files", "layers", "test_runs", "edits"} <= set(schemas["state_schema"]["properties"])
    context = schemas["context_schema"]["properties"]
    for name in ("model", "sandbox", "max_iterations", "test_timeout", "output_dir"):
        assert context[name].get("description"), name
    assert context["max_iterations"]["default"] == 10
    # Studio's forms: every input described, the template in one place (the input), and
    # no field a form cannot fill (a chat model object is Python-only).
    assert all(field.get("description") for field in inputs["properties"].values()), inputs
    assert "template" not in context and "chat_model" not in context


def write_cassette(tmp_path: Path, script: dict) -> Path:
    cassette = tmp_path / "cassette.json"
    cassette.write_text(json.dumps({"version": 1, "calls": [{"key": k, "reply": v} for k, v in script.items()]}))
    return cassette


async def test_a_whole_run_through_the_sdk(server: str, root: Path, tmp_path: Path):
    script = replies(BAD, **{"diagnose:1": "add subtracts", "plan:1": FIX, "fix_file:1:adder.py": GOOD})
    cassette = write_cassette(tmp_path, script)

    client = langgraph_sdk.get_client(url=server)
    thread = await client.threads.create()
    out = root / "runs" / thread["thread_id"]  # a client's relative output_dir lands under the root
    nodes, updates, custom = [], [], []
    async for part in client.runs.stream(
        thread["thread_id"],
        "devlooper",
        input={"prompt": "an adder", "template": "python"},
        context={
            "model": f"replay:{cassette}", "output_dir": f"runs/{thread['thread_id']}", "max_iterations": 4,
            "record": f"runs/{thread['thread_id']}.json",
        },
        stream_mode=["updates", "custom"],
    ):
        assert part.event != "error", part.data
        if part.event == "updates":
            nodes += list(part.data)
            updates.append(part.data)
        elif part.event == "custom":
            custom.append(part.data)
    assert nodes == ["design", "generate", "test", "diagnose", "plan", "apply", "test", "finish"]

    # The updates say what happened (not only get_state): the failing tests, the diagnosis, the plan.
    steps = [(node, data["event"]) for u in updates for node, data in u.items()]
    first_test = steps[2][1]
    assert [f["name"] for f in first_test["failing"]] == ["tests/test_adder.py::test_add"]
    assert (first_test["passed"], first_test["failed"]) == (1, 1)
    assert steps[3][1]["diagnosis"] == "add subtracts" and steps[4][1]["summary"] == FIX["summary"]
    assert "+    return a + b" in steps[5][1]["edits"][0]["diff"]
    # Custom events: each model call as it starts and ends, each step as it starts.
    calls = [(c["event"], c["key"]) for c in custom if c["event"].startswith("model_")]
    assert calls.index(("model_start", "diagnose:1")) < calls.index(("model_end", "diagnose:1"))
    assert [c["node"] for c in custom if c["event"] == "step_start"] == nodes

    # `devlooper run --json` prints the same events, one per line.
    local = subprocess.run(
        [sys.executable, "-m", "devlooper", "run", "an adder", "--model", f"replay:{cassette}", "--json",
         "--max-iterations", "4", "--db", str(tmp_path / "db.sqlite")],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])},
    )
    assert local.returncode == 0, local.stderr
    printed = [json.loads(line) for line in local.stdout.splitlines()]
    local_updates = [e["data"] for e in printed if e["event"] == "updates"]
    assert [set(u[node]) for u in local_updates for node in u] == [set(u[node]) for u in updates for node in u]
    assert [comparable_event(data["event"]) for u in local_updates for data in u.values()] == [
        comparable_event(e) for _, e in steps
    ]
    local_custom = [e["data"] for e in printed if e["event"] == "custom"]
    assert sorted(map(comparable_event, local_custom), key=repr) == sorted(map(comparable_event, custom), key=repr)

    state = await client.threads.get_state(thread["thread_id"])
    values = state["values"]
    assert values["status"] == "passed" and values["iteration"] == 2
    assert [r["exit_code"] for r in values["test_runs"]][-1] == 0
    assert values["files"]["adder.py"] == GOOD
    assert (out / "adder.py").read_text() == GOOD
    report = json.loads((out / ".devlooper" / "report.json").read_text())
    assert report["thread_id"] == thread["thread_id"]
    recorded = json.loads((root / "runs" / f"{thread['thread_id']}.json").read_text())
    assert [c["key"] for c in recorded["calls"]][0] == "plan_project"
    # The isolation the run's code ran with, through the API and in the report.
    settings = values["sandbox_settings"]
    assert (settings["backend"], settings["isolation"], settings["local"]["isolation"]) == ("local", "bwrap", "bwrap")
    assert report["isolation"] == values["report"]["isolation"] == "bwrap"

    history = await client.threads.get_history(thread["thread_id"], limit=50)
    assert len(history) >= 8  # a checkpoint per step, kept by the server's own persistence


def comparable_event(event: dict) -> dict:
    """An event without what differs between two runs of the same script (clocks, paths)."""
    if not isinstance(event, dict):
        return event
    return {
        k: comparable_event(v) if isinstance(v, dict) else [comparable_event(x) for x in v] if isinstance(v, list) else v
        for k, v in event.items()
        if k not in ("seconds", "duration", "tail", "output")
    }


async def test_a_missing_key_reaches_the_client_as_its_message(server: str):
    client = langgraph_sdk.get_client(url=server)
    error = await refusal(client, {"model": "openai:gpt-4o-mini"})
    assert error["error"] == "ConfigError", error
    assert error["message"].startswith("OPENAI_API_KEY is not set in the server's environment"), error
    assert "--" not in error["message"]  # a client has no command line


async def refusal(client, context: dict) -> dict:
    """A run the server refuses: the error event a client gets, and the nodes that ran."""
    thread = await client.threads.create()
    errors, nodes = [], []
    async for part in client.runs.stream(
        thread["thread_id"], "devlooper", input={"prompt": "an adder", "template": "python"},
        context=context, stream_mode="updates",
    ):
        if part.event == "error":
            errors.append(part.data)
        elif part.event == "updates":
            nodes += list(part.data)
    assert nodes == [] and len(errors) == 1, (nodes, errors)
    return errors[0]


async def test_a_client_cannot_write_outside_the_root_or_over_files(server: str, root: Path, tmp_path: Path):
    # A cassette with no replies: a run that got past the path check would fail on its first model call.
    model = f"replay:{write_cassette(tmp_path, {})}"
    client = langgraph_sdk.get_client(url=server)
    outside = tmp_path / "outside"

    error = await refusal(client, {"model": model, "output_dir": str(outside)})
    assert error["error"] == "ServerPathError" and "is outside the server's root" in error["message"], error
    error = await refusal(client, {"model": model, "output_dir": "../outside"})
    assert "is outside the server's root" in error["message"], error
    error = await refusal(client, {"model": model, "record": str(outside / "cassette.json")})
    assert "record" in error["message"] and "is outside the server's root" in error["message"], error

    (root / "out-link").symlink_to(tmp_path, target_is_directory=True)
    error = await refusal(client, {"model": model, "output_dir": "out-link/outside"})
    assert "is outside the server's root" in error["message"], error
    assert not outside.exists()

    (root / "taken").mkdir()
    (root / "taken" / "keep.txt").write_text("precious")
    error = await refusal(client, {"model": model, "output_dir": "taken"})
    assert "a server client cannot replace files" in error["message"], error
    assert (root / "taken" / "keep.txt").read_text() == "precious"


async def stream(client, thread_id: str, **kwargs) -> tuple[list[str], list[dict]]:
    """One run on the thread: the nodes that ran and the questions it paused on."""
    nodes, questions = [], []
    async for part in client.runs.stream(thread_id, "devlooper", stream_mode="updates", **kwargs):
        assert part.event != "error", part.data
        if part.event == "updates":
            for node, update in part.data.items():
                if node == "__interrupt__":
                    questions += [i["value"] for i in update]
                else:
                    nodes.append(node)
    return nodes, questions


async def test_pauses_answered_with_only_command_resume_keep_the_runs_settings(server: str, root: Path, tmp_path: Path):
    from tests.integration.test_cli_loop import cassette
    from tests.integration.test_loop_memory import fix

    model = cassette(tmp_path, **{"plan:5": fix("use + as the human said"), "fix_file:5:adder.py": GOOD})
    client = langgraph_sdk.get_client(url=server)
    thread = (await client.threads.create())["thread_id"]
    context = {"model": model, "interactive": True, "output_dir": f"paused/{thread}", "max_iterations": 8}
    _, questions = await stream(client, thread, input={"prompt": "a tiny library", "template": "python"},
                                context=context)
    assert [q["kind"] for q in questions] == ["plan"]
    # No context with the answers: the thread's own settings (model, output, interactive) go on.
    _, questions = await stream(client, thread, command={"resume": "yes"})
    assert [q["kind"] for q in questions] == ["stuck"] and questions[0]["iteration"] == 5
    nodes, questions = await stream(client, thread, command={"resume": "add must return a + b"})
    assert questions == [] and nodes[-1] == "finish"
    values = (await client.threads.get_state(thread))["values"]
    assert values["status"] == "passed", values.get("reason")
    assert [e["rung"] for e in values["loop_events"]] == ["warned", "asked"]
    assert (root / "paused" / thread / "adder.py").read_text() == GOOD


async def test_improve_mode_through_the_sdk(server: str, root: Path, tmp_path: Path):
    cassette = write_cassette(tmp_path, {"diagnose:1": "add subtracts", "plan:1": FIX, "fix_file:1:adder.py": GOOD})
    tests = "from adder import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    client = langgraph_sdk.get_client(url=server)
    thread = (await client.threads.create())["thread_id"]
    nodes, _ = await stream(
        client, thread,
        input={"prompt": "make the tests pass", "project_files": {
            "adder.py": BAD, "tests/test_adder.py": tests, "requirements.txt": "\n"}},
        context={"model": f"replay:{cassette}", "output_dir": f"improved/{thread}"},
    )
    assert nodes == ["load", "test", "diagnose", "plan", "apply", "test", "finish"]
    values = (await client.threads.get_state(thread))["values"]
    assert values["status"] == "passed" and values["template"] == "python"
    assert (root / "improved" / thread / "adder.py").read_text() == GOOD
