"""The real langchain-openai client against a loopback OpenAI-compatible server.

The server answers like a small local model would (Ollama, vLLM, llama.cpp):
it reads the request, recognises the step from the prompt, and replies. The
same session is recorded with --record and replayed with --model replay:.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.openai_server import ADDER, OpenAIServer, replies_from, step_of


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(replies_from(ADDER), key=step_of) as served:
        yield served


def devlooper(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-m", "devlooper", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_a_local_openai_compatible_server_drives_a_run_and_is_recorded(server, tmp_path):
    cassette = tmp_path / "session.json"
    live = devlooper(
        "run", "an adder", "--model", "openai:tiny-local", "--base-url", server.url,
        "--record", str(cassette), "--output", str(tmp_path / "live"), tmp_path=tmp_path,
    )
    assert live.returncode == 0, live.stderr
    assert server.requests and all(r["model"] == "tiny-local" for r in server.requests)
    report = json.loads((tmp_path / "live" / ".devlooper" / "report.json").read_text())
    assert report["status"] == "passed" and report["iterations"] == 2
    assert report["usage"]["input_tokens"] == 100 * len(server.requests)

    keys = [c["key"] for c in json.loads(cassette.read_text())["calls"]]
    assert sorted(keys) == sorted(
        ["plan_project", "generate_file:adder.py", "generate_file:tests/test_adder.py", "diagnose:1", "plan:1",
         "fix_file:1:adder.py"]
    )

    served = len(server.requests)
    replay = devlooper(
        "run", "an adder", "--model", f"replay:{cassette}", "--output", str(tmp_path / "replayed"), tmp_path=tmp_path
    )
    assert replay.returncode == 0, replay.stderr
    assert len(server.requests) == served  # the replay never reached the server
    for name in ("adder.py", "tests/test_adder.py"):
        assert (tmp_path / "replayed" / name).read_text() == (tmp_path / "live" / name).read_text()


def run_live(server: OpenAIServer, tmp_path: Path, *more: str, name: str = "live") -> subprocess.CompletedProcess:
    return devlooper(
        "run", "an adder", "--model", "openai:tiny-local", "--base-url", server.url, "--thread-id", name,
        "--db", str(tmp_path / "runs.sqlite"), "--output", str(tmp_path / name), *more, tmp_path=tmp_path,
    )


def report_of(tmp_path: Path, name: str = "live") -> dict:
    return json.loads((tmp_path / name / ".devlooper" / "report.json").read_text())


def requests_of(server: OpenAIServer, step: str) -> list[dict]:
    return [r for r in server.requests if step_of(r) == step]


@pytest.mark.parametrize("mode", ["json_schema", "function_calling", "json_mode"])
def test_a_whole_run_in_each_structured_output_mode(server, tmp_path, mode):
    done = run_live(server, tmp_path, "--structured-output", mode)
    assert done.returncode == 0, done.stderr
    assert report_of(tmp_path)["status"] == "passed"
    [plan] = requests_of(server, "plan")
    if mode == "json_schema":
        assert plan["response_format"]["type"] == "json_schema"
    elif mode == "function_calling":
        assert plan["tools"][0]["function"]["name"] == "DebugPlan" and "response_format" not in plan
    else:
        assert plan["response_format"] == {"type": "json_object"}
        assert "DebugPlan" in plan["messages"][-1]["content"]  # the schema travels in the prompt


@pytest.mark.parametrize(
    "bad, said",
    [("{'summary': 'not json", "not valid JSON"), (json.dumps({"summary": "nothing", "actions": []}), "actions")],
    ids=["invalid JSON", "schema violation"],
)
def test_a_bad_structured_reply_is_asked_again_with_the_error(server, tmp_path, bad, said):
    server.script = {"plan": [bad]}
    cassette = tmp_path / "session.json"
    done = run_live(server, tmp_path, "--record", str(cassette))
    assert done.returncode == 0, done.stderr
    assert report_of(tmp_path)["status"] == "passed"
    first, retry = requests_of(server, "plan")
    assert said in retry["messages"][-1]["content"] and said not in first["messages"][-1]["content"]
    keys = [c["key"] for c in json.loads(cassette.read_text())["calls"]]
    assert "plan:1" in keys and "plan:1#retry1" in keys


def test_three_bad_replies_are_a_failed_plan_and_the_run_goes_on(server, tmp_path):
    server.script = {"plan": ["nope", "still nope", json.dumps({"summary": "x"})]}
    done = run_live(server, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    report = report_of(tmp_path)
    assert report["status"] == "passed" and report["iterations"] == 3
    failed = [r for a in report["actions"] if a["iteration"] == 1 for r in a["results"]]
    assert failed == [{"kind": "plan", "target": "debug plan", "ok": False, "exit_code": None, "duration": 0.0}]
    assert len(requests_of(server, "plan")) == 4  # three for the failed plan, one for the next
    # The failure went back to the model: the next diagnosis sees it.
    assert "did not validate" in requests_of(server, "diagnose")[1]["messages"][-1]["content"]


def test_a_rate_limit_is_waited_out_as_the_server_asks(server, tmp_path):
    server.script = {"diagnose": [(429, {"Retry-After": "1"})]}
    done = run_live(server, tmp_path)
    assert done.returncode == 0, done.stderr
    at = [t for r, t in zip(server.requests, server.received) if step_of(r) == "diagnose"]
    assert len(at) == 2 and at[1] - at[0] >= 1.0


def test_a_server_that_keeps_failing_stops_the_run_and_resume_finishes_it(server, tmp_path):
    server.script = {"diagnose": [(500, {"Retry-After": "0"})] * 20}
    stopped = run_live(server, tmp_path)
    assert stopped.returncode == 1
    assert "Traceback" not in stopped.stderr
    assert "kept failing" in stopped.stderr and "devlooper resume live" in stopped.stderr
    assert len(requests_of(server, "diagnose")) == 5  # one try and four retries, in one layer (the client's are off)
    server.script = {}
    resumed = devlooper("resume", "live", "--db", str(tmp_path / "runs.sqlite"), tmp_path=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert report_of(tmp_path)["status"] == "passed"
    assert len(requests_of(server, "plan_project")) == 1  # generation was not repeated


def test_a_token_budget_stops_the_run_and_a_bigger_one_resumes_it(server, tmp_path):
    stopped = run_live(server, tmp_path, "--max-tokens", "300")  # generation alone takes 3 x 120
    assert stopped.returncode == 1
    report = report_of(tmp_path)
    assert report["status"] == "budget" and report["usage"]["total_tokens"] == 360
    assert report["usage"]["by_step"]["generate_file"]["calls"] == 2
    assert "input + " in stopped.stderr and "devlooper resume live" in stopped.stderr
    assert not requests_of(server, "diagnose")

    same = devlooper("resume", "live", "--db", str(tmp_path / "runs.sqlite"), tmp_path=tmp_path)
    assert same.returncode == 2 and "--max-tokens" in same.stderr  # the budget is still spent

    resumed = devlooper(
        "resume", "live", "--max-tokens", "100000", "--db", str(tmp_path / "runs.sqlite"), tmp_path=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    report = report_of(tmp_path)
    assert report["status"] == "passed" and report["usage"]["total_tokens"] == 120 * len(server.requests)


# adder.py with helpers around add(): more code than a 1,000-token prompt shows whole, so
# the code diagnose sees is chosen by ranking, but small enough to be fixed whole.
HELPERS = "".join(f"def scale_{i}(value):\n    return value * {i}\n\n\n" for i in range(42))
LARGER = {**ADDER, "generate_file:adder.py": HELPERS + ADDER["generate_file:adder.py"]}


@pytest.mark.parametrize("status", [200, 401])
def test_an_embedding_model_on_the_same_server_ranks_the_code_and_a_failing_one_does_not_stop_the_run(
    tmp_path, status
):
    with OpenAIServer(replies_from(LARGER), key=step_of) as server:
        server.embeddings_status = status
        live = run_live(
            server, tmp_path, "--embeddings", "openai:tiny-embed", "--max-prompt-tokens", "1000", "--json",
        )
    assert live.returncode == 0, live.stderr
    assert report_of(tmp_path)["status"] == "passed"
    assert server.embeddings and all(r["model"] == "tiny-embed" for r in server.embeddings)
    events = [json.loads(line) for line in live.stdout.splitlines() if line.startswith("{")]
    warnings = [e["data"] for e in events if e["event"] == "custom" and e["data"]["event"] == "warning"]
    if status == 200:
        # Text, not token ids, reaches a server that is not OpenAI's; each chunk is sent once.
        sent = [t for r in server.embeddings for t in ([r["input"]] if isinstance(r["input"], str) else r["input"])]
        assert all(isinstance(t, str) for t in sent) and len(sent) == len(set(sent))
        assert any("def add(a, b)" in t for t in sent)
        assert not warnings
    else:
        [warning] = warnings  # diagnose ranked by BM25 alone, and said so
        assert "401" in warning["message"] and "BM25 alone" in warning["message"]
