"""LangSmith tracing with nothing but its environment variables, against a loopback endpoint.

`devlooper run` is started with LANGSMITH_TRACING/LANGSMITH_API_KEY/LANGSMITH_ENDPOINT
set, the endpoint being a small HTTP server here that keeps what the LangSmith
client uploads (multipart run batches). The uploaded runs must form the tree a
user sees in LangSmith, with useful names, tags and metadata, all of them closed.
"""

from __future__ import annotations

import email.parser
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.test_loop import BAD, FIX, GOOD, replies


class Uploads(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []

    def do_GET(self) -> None:  # /info: unknown here, the client falls back to its defaults
        self.send_response(404)
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.bodies.append((self.headers.get("content-type", ""), self.rfile.read(length)))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    do_PATCH = do_POST

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def langsmith() -> Iterator[tuple[str, list]]:
    bodies: list[tuple[str, bytes]] = []
    handler = type("Handler", (Uploads,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    finally:
        server.shutdown()
        server.server_close()


def runs_of(bodies: list[tuple[str, bytes]]) -> dict[str, dict]:
    """Every run the client uploaded, by id, its post and patch parts merged."""
    runs: dict[str, dict] = {}
    for content_type, body in bodies:
        assert content_type.startswith("multipart/form-data"), content_type
        message = email.parser.BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        for part in message.get_payload():
            name = part.get_param("name", header="content-disposition")
            op, run_id, *field = name.split(".")
            data = json.loads(part.get_payload(decode=True))
            run = runs.setdefault(run_id, {"id": run_id})
            if field:
                run[field[0]] = data
            else:
                run.update({k: v for k, v in data.items() if v is not None})
    return runs


def test_a_cli_run_is_traced_as_a_readable_tree(tmp_path: Path, langsmith):
    endpoint, bodies = langsmith
    script = replies(BAD, **{"diagnose:1": "add subtracts", "plan:1": FIX, "fix_file:1:adder.py": GOOD})
    cassette = tmp_path / "cassette.json"
    cassette.write_text(json.dumps({"calls": [{"key": k, "reply": v} for k, v in script.items()]}))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH_", "LANGCHAIN_"))},
        "LANGSMITH_TRACING": "true",
        "LANGSMITH_API_KEY": "lsv2-test-key",
        "LANGSMITH_ENDPOINT": endpoint,
        "LANGSMITH_PROJECT": "devlooper-tests",
    }
    done = subprocess.run(
        [sys.executable, "-m", "devlooper", "run", "an adder", "--model", f"replay:{cassette}",
         "--db", str(tmp_path / "db.sqlite"), "--output", str(tmp_path / "out"), "--thread-id", "traced"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr

    runs = runs_of(bodies)
    assert runs, "nothing was uploaded"
    assert all(r.get("end_time") for r in runs.values()), "runs left open: the client did not flush at exit"
    [root] = [r for r in runs.values() if not r.get("parent_run_id")]
    assert root["name"] == "devlooper" and {"devlooper", "sandbox:local"} <= set(root["tags"])
    meta = root["extra"]["metadata"]
    assert meta["thread_id"] == "traced"
    assert json.loads(meta["devlooper_context"])["model"] == f"replay:{cassette}"
    assert all(r["trace_id"] == root["id"] for r in runs.values())

    steps = sorted((r["start_time"], r["name"]) for r in runs.values() if r.get("parent_run_id") == root["id"])
    # __start__ is the route at the start (a new project is designed, an existing one loaded).
    assert [name for _, name in steps] == [
        "__start__", "design", "generate", "test", "diagnose", "plan", "apply", "test", "finish"]

    named = {r["name"]: r for r in runs.values() if r["name"].startswith("devlooper.")}
    assert set(named) == {"devlooper.plan_project", "devlooper.generate_file", "devlooper.diagnose",
                          "devlooper.plan", "devlooper.fix_file"}
    calls = sorted(r["extra"]["metadata"]["devlooper_call"] for r in runs.values() if r["run_type"] == "llm")
    assert calls == ["diagnose:1", "fix_file:1:adder.py", "generate_file:adder.py",
                     "generate_file:tests/test_adder.py", "plan:1", "plan_project"]
    for run in runs.values():
        if run["run_type"] == "llm":
            step = run["extra"]["metadata"]["devlooper_call"].split(":", 1)[0]
            assert {"devlooper", step} <= set(run["tags"])
    assert b"lsv2-test-key" not in b"".join(body for _, body in bodies)  # the key goes in a header only
