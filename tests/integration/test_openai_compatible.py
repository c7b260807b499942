"""The real langchain-openai client against a loopback OpenAI-compatible server.

The server answers like a small local model would (Ollama, vLLM, llama.cpp):
it reads the request, recognises the step from the prompt, and replies. The
same session is recorded with --record and replayed with --model replay:.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PLAN = {
    "notes": "one module",
    "files": [{"path": "adder.py", "purpose": "add()"}, {"path": "tests/test_adder.py", "purpose": "tests"}],
    "packages": [],
}
DEBUG_PLAN = {"summary": "make add add", "actions": [{"kind": "fix_file", "path": "adder.py", "instructions": "use +"}]}
FILES = {
    "adder.py": "def add(a, b):\n    return a - b\n",
    "tests/test_adder.py": "from adder import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}


def reply_for(body: dict) -> str:
    prompt = body["messages"][-1]["content"]
    schema = json.dumps(body.get("response_format") or body.get("tools") or "")
    if "ProjectPlan" in schema:
        return json.dumps(PLAN)
    if "DebugPlan" in schema:
        return json.dumps(DEBUG_PLAN)
    if "Diagnose the failure" in prompt:
        return "add() subtracts its arguments."
    if match := re.search(r"Reply with the complete new content of `([^`]+)`", prompt):
        return "def add(a, b):\n    return a + b\n"
    if match := re.search(r"Write the complete content of `([^`]+)`", prompt):
        return FILES[match.group(1)]
    raise AssertionError(f"unexpected request: {prompt[:200]}")


class Handler(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Handler.requests.append(body)
        content = reply_for(body)
        payload = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Handler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    httpd.shutdown()


def devlooper(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-m", "devlooper", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_a_local_openai_compatible_server_drives_a_run_and_is_recorded(server, tmp_path):
    cassette = tmp_path / "session.json"
    live = devlooper(
        "run", "an adder", "--model", "openai:tiny-local", "--base-url", server,
        "--record", str(cassette), "--output", str(tmp_path / "live"), tmp_path=tmp_path,
    )
    assert live.returncode == 0, live.stderr
    assert Handler.requests and all(r["model"] == "tiny-local" for r in Handler.requests)
    report = json.loads((tmp_path / "live" / ".devlooper" / "report.json").read_text())
    assert report["status"] == "passed" and report["iterations"] == 2
    assert report["usage"]["input_tokens"] == 100 * len(Handler.requests)

    keys = [c["key"] for c in json.loads(cassette.read_text())["calls"]]
    assert sorted(keys) == sorted(
        ["plan_project", "generate_file:adder.py", "generate_file:tests/test_adder.py", "diagnose:1", "plan:1",
         "fix_file:1:adder.py"]
    )

    served = len(Handler.requests)
    replay = devlooper(
        "run", "an adder", "--model", f"replay:{cassette}", "--output", str(tmp_path / "replayed"), tmp_path=tmp_path
    )
    assert replay.returncode == 0, replay.stderr
    assert len(Handler.requests) == served  # the replay never reached the server
    for name in ("adder.py", "tests/test_adder.py"):
        assert (tmp_path / "replayed" / name).read_text() == (tmp_path / "live" / name).read_text()
