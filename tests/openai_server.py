"""A scripted OpenAI-compatible chat completions server on loopback, for tests and benchmarks.

It answers ``POST .../chat/completions`` like a local model's server would (Ollama,
vLLM, llama.cpp): ``reply(body)`` gives the text of the answer; a request that
offers a tool and names it gets the text as that tool call's arguments. Each
request can first wait ``latency`` seconds, as a remote model does. The server
logs every request with the wall-clock time (``time.time()``, comparable across
processes) it arrived and its reply was sent.

``script`` maps a key (``key(body)``, e.g. the step) to answers its next requests
get instead of ``reply``'s: a reply's text, or an HTTP error as ``(status, headers)``.

``POST .../embeddings`` is answered too, with vectors of the text's words hashed
into 16 buckets (``vector_of``), as a small local embedding model might, or with
``embeddings_status`` when that is not 200; ``embeddings`` logs those requests.

``key_of`` tells which of devlooper's requests a body is, from its prompt and
schema; ``replies_from`` answers a whole session from a dict keyed that way, such
as ``ADDER``: two files, one wrong, one fix.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ADDER: dict[str, Any] = {
    "plan_project": {
        "notes": "one module",
        "files": [{"path": "adder.py", "purpose": "add()"}, {"path": "tests/test_adder.py", "purpose": "tests"}],
        "packages": [],
    },
    "generate_file:adder.py": "def add(a, b):\n    return a - b\n",
    "generate_file:tests/test_adder.py": "from adder import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    "diagnose": "add() subtracts its arguments.",
    "plan": {"summary": "make add add", "actions": [{"kind": "fix_file", "path": "adder.py", "instructions": "use +"}]},
    "fix_file:adder.py": "def add(a, b):\n    return a + b\n",
}
USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}  # of every reply


def key_of(body: dict) -> str:
    """Which request a body is: ``plan_project``, ``generate_file:PATH``, ``diagnose``,
    ``plan`` or ``fix_file:PATH``, from its schema (any structured mode) or its prompt."""
    prompt = body["messages"][-1]["content"]
    schema = json.dumps([body.get("response_format"), body.get("tools"), body["messages"]])
    if "ProjectPlan" in schema:
        return "plan_project"
    if "DebugPlan" in schema:
        return "plan"
    if "Diagnose the failure" in prompt:
        return "diagnose"
    if found := re.search(r"Reply with the complete new content of `([^`]+)`", prompt):
        return f"fix_file:{found.group(1)}"
    if found := re.search(r"Write the complete content of `([^`]+)`", prompt):
        return f"generate_file:{found.group(1)}"
    raise AssertionError(f"unexpected request: {prompt[:200]}")


def step_of(body: dict) -> str:
    return key_of(body).split(":")[0]


def replies_from(session: dict[str, Any]) -> Callable[[dict], str]:
    """Answers from ``session`` (``key_of`` keys; a dict value is sent as JSON)."""

    def reply(body: dict) -> str:
        answer = session[key_of(body)]
        return answer if isinstance(answer, str) else json.dumps(answer)

    return reply


def vector_of(text: str) -> list[float]:
    """An embedding as a small local model's might be: its words hashed into 16 buckets."""
    vector = [0.1] * 16
    for word in re.findall(r"[a-z]+", text.lower()):
        vector[hashlib.sha256(word.encode()).digest()[0] % 16] += 1.0
    return vector


class _Listener(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: the sixth of a burst of concurrent
    # connections (a plan's files are written at once) has its SYN dropped and retried
    # by the kernel a second later, which a server built for concurrency does not do.
    request_queue_size = 128
    daemon_threads = True


class OpenAIServer:
    def __init__(self, reply: Callable[[dict], str], *, key: Callable[[dict], str] = lambda body: "",
                 latency: float = 0.0) -> None:
        self.reply, self.key, self.latency = reply, key, latency
        self.script: dict[str, list[Any]] = {}
        self.requests: list[dict] = []
        self.received: list[float] = []
        self.replied: list[float] = []
        self.embeddings: list[dict] = []  # the /embeddings requests
        self.embeddings_status = 200
        self._lock = threading.Lock()
        self._httpd = _Listener(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._httpd.server_port}/v1"

    def __enter__(self) -> OpenAIServer:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, body: dict) -> tuple[int, dict, dict]:
        with self._lock:
            self.requests.append(body)
            self.received.append(time.time())
            queued = self.script.get(self.key(body))
            answer = queued.pop(0) if queued else None
        if answer is None:
            answer = self.reply(body)
        if self.latency:
            time.sleep(self.latency)
        if isinstance(answer, tuple):
            status, headers = answer
            return status, {"error": {"message": f"scripted {status}", "type": "server_error"}}, headers
        message: dict[str, Any] = {"role": "assistant", "content": answer}
        if body.get("tools") and body.get("tool_choice"):  # function calling: the arguments as a tool call
            name = body["tools"][0]["function"]["name"]
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": answer}}
            ]}
        return 200, {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": USAGE,
        }, {}

    def _embed(self, body: dict) -> tuple[int, dict, dict]:
        with self._lock:
            self.embeddings.append(body)
        if self.embeddings_status != 200:
            status = self.embeddings_status
            return status, {"error": {"message": f"scripted {status}", "type": "invalid_request_error"}}, {}
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        data = []
        for i, text in enumerate(texts):
            vector: list[float] | str = vector_of(text)
            if body.get("encoding_format") == "base64":  # what the openai client asks for by default
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        usage = {"prompt_tokens": 10 * len(texts), "total_tokens": 10 * len(texts)}
        return 200, {"object": "list", "data": data, "model": body["model"], "usage": usage}, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                answer = server._embed if self.path.endswith("/embeddings") else server._answer
                status, payload, headers = answer(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                with server._lock:
                    server.replied.append(time.time())

            def log_message(self, *args):
                pass

        return Handler
