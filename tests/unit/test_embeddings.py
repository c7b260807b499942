"""An embedding model beside BM25: the code a prompt shows when an embedding model is
configured, what happens when it fails, and how it is configured."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings

from devlooper import cli, events, prompts
from devlooper.context import Context, settings_of
from devlooper.errors import ConfigError
from devlooper.models import load_embeddings
from devlooper.nodes.common import check_embeddings, ranker_of
from devlooper.prompts import retrieval
from devlooper.templates import get_template

PYTHON = get_template("python")

# The fake model's meanings: words that say the same thing in other words. A word it
# does not know means nothing to it (as a stop word means little to a real one).
CONCEPTS = {
    "sum": {"total", "totals", "tally", "accumulate", "sum", "add"},
    "layout": {"header", "title", "format", "margin", "column"},
}
TOKEN = re.compile(r"[a-z]+")


class SynonymEmbeddings(Embeddings):
    """A small deterministic model: a text's vector counts its words per meaning."""

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def _vector(self, text: str) -> list[float]:
        found = TOKEN.findall(text.lower().replace("_", " "))
        counts = [sum(w in words for w in found) for words in CONCEPTS.values()]
        vector = [float(c) for c in counts] + [0.1]  # never the zero vector
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded += texts
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


# The fault is in `accumulate`, which shares no word with the failure; the ledger
# module, which shares many, is larger than the code a small prompt may show.
LEDGER = "".join(
    f"def ledger_header_{i}(ledger):\n    \"\"\"Header line {i} of a ledger test page.\"\"\"\n"
    f"    return f'ledger {{ledger.name}} page {i}'\n\n\n"
    for i in range(40)
)
MATHUTIL = "def accumulate(entries):\n    tally = 0\n    for entry in entries:\n        tally -= entry\n    return tally\n"
FILES = {
    "ledger.py": LEDGER,
    "mathutil.py": MATHUTIL,
    "tests/test_ledger.py": "from ledger import Ledger\n\n\ndef test_ledger_totals():\n    assert Ledger([1, 5]).totals() == 6\n",
}
FAILURE = {"name": "tests/test_ledger.py::test_ledger_totals", "message": "assert -6 == 6"}


def _state() -> dict:
    output = "FAILED tests/test_ledger.py::test_ledger_totals - assert -6 == 6\n"
    return {
        "prompt": "a ledger", "files": FILES, "diagnosis": "", "iteration": 1, "plans": [], "edits": [],
        "action_results": [],
        "test_runs": [{"iteration": 1, "exit_code": 1, "output": output, "dropped": 0, "passed": 0, "failed": 1,
                       "failures": [FAILURE], "timed_out": False, "duration": 0.1}],
    }


def _diagnose(ctx: Context) -> str:
    messages = prompts.diagnose(_state(), PYTHON, 16_000, budget=2_000, ranker=ranker_of(ctx))
    return "\n".join(m.content for m in messages)


def test_an_embedding_model_brings_in_the_chunk_that_means_the_failure_in_other_words():
    without = _diagnose(Context())
    assert "def accumulate" not in without  # BM25 alone: no word in common, not shown
    model = SynonymEmbeddings()
    with_embeddings = _diagnose(Context(embedding_model=model))
    assert "def accumulate(entries):" in with_embeddings
    assert "ledger_header_" in with_embeddings  # BM25's choices are still there, fused
    assert model.embedded, "the chunks were embedded"


def test_each_chunk_is_embedded_once_per_process():
    model = SynonymEmbeddings()
    ctx = Context(embedding_model=model)
    _diagnose(ctx)
    first = len(model.embedded)
    _diagnose(ctx)
    assert first and len(model.embedded) == first  # the second prompt sent nothing new
    assert len(set(model.embedded)) == len(model.embedded)


class Down(SynonymEmbeddings):
    def embed_documents(self, texts):
        raise ConnectionError("connection refused")


class Unauthorized(SynonymEmbeddings):
    def embed_query(self, text):
        raise PermissionError("401 invalid api key")


class TooFew(SynonymEmbeddings):
    def embed_documents(self, texts):
        return super().embed_documents(texts)[1:]


class NotNumbers(SynonymEmbeddings):
    def embed_documents(self, texts):
        return [["x"] * 3 for _ in texts]


class NaN(SynonymEmbeddings):
    def embed_query(self, text):
        return [math.nan] * 3


@pytest.mark.parametrize("model", [Down, Unauthorized, TooFew, NotNumbers, NaN])
def test_a_failing_embedding_model_leaves_bm25_alone_and_says_so(model, monkeypatch):
    sent = []
    monkeypatch.setattr(events, "emit", sent.append)
    prompt = _diagnose(Context(embedding_model=model()))
    assert prompt == _diagnose(Context())  # the prompt BM25 alone gives
    [warning] = [e for e in sent if e["event"] == "warning"]
    assert warning["about"] == "embeddings" and "BM25 alone" in warning["message"]


def test_a_failed_embedding_model_is_not_asked_again_by_the_next_prompts(monkeypatch):
    from devlooper.prompts import semantic

    calls = []

    class Hanging(SynonymEmbeddings):
        def embed_documents(self, texts):  # as a server that times out: every call costs its wait
            calls.append(len(texts))
            raise TimeoutError("request timed out")

    sent = []
    monkeypatch.setattr(events, "emit", sent.append)
    ctx = Context(embedding_model=Hanging())
    for _ in range(3):
        assert _diagnose(ctx) == _diagnose(Context())
    assert len(calls) == 1 and len([e for e in sent if e["event"] == "warning"]) == 1
    monkeypatch.setattr(semantic.time, "monotonic", lambda: 1e12)  # the cool-down is over
    _diagnose(ctx)
    assert len(calls) == 2


def test_a_file_too_large_to_fix_whole_shows_its_chunks_by_the_same_ranking():
    from devlooper.schemas import Action

    big = {**FILES, "ledger.py": LEDGER + "\n\n" + MATHUTIL}
    state = {**_state(), "files": big, "diagnosis": "the totals come out negative"}
    action = Action(kind="fix_file", path="ledger.py", instructions="fix the totals")
    ranked = prompts.fix_file(state, PYTHON, action, 1_500, ranker=ranker_of(Context(embedding_model=SynonymEmbeddings())))
    plain = prompts.fix_file(state, PYTHON, action, 1_500)
    assert "def accumulate" in ranked[-1].content and "def accumulate" not in plain[-1].content


def test_without_an_embedding_model_the_ranking_is_bm25_and_nothing_of_embeddings_is_imported():
    assert ranker_of(Context()) is retrieval.rank
    probe = (
        "import sys, json\n"
        "from devlooper.context import Context\n"
        "from devlooper.nodes.common import ranker_of\n"
        "from devlooper import prompts\n"
        "from tests.unit.test_embeddings import _state, PYTHON\n"
        "prompts.diagnose(_state(), PYTHON, 16000, budget=2000, ranker=ranker_of(Context()))\n"
        "names = ('langchain_classic', 'langchain.embeddings', 'devlooper.prompts.semantic', 'langchain_openai.embeddings')\n"
        "print(json.dumps(sorted(n for n in names if n in sys.modules)))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


# --- configuration ----------------------------------------------------------------
def test_the_cli_takes_an_embedding_model_and_its_server(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    args = cli._parser().parse_args([
        "run", "x", "--embeddings", "openai:text-embedding-3-small", "--output", str(tmp_path / "o"),
    ])
    ctx = cli._context(args)
    assert ctx.embeddings == "openai:text-embedding-3-small" and ctx.embeddings_base_url is None
    local = cli._context(cli._parser().parse_args([
        "run", "x", "--embeddings", "openai:nomic-embed-text", "--embeddings-base-url", "http://127.0.0.1:11434/v1",
        "--output", str(tmp_path / "o"),
    ]))
    assert local.embeddings_base_url == "http://127.0.0.1:11434/v1"
    assert settings_of(local)["embeddings"] == "openai:nomic-embed-text"  # a resume ranks the same way


def test_the_environment_names_the_embedding_model_unless_one_is_given(monkeypatch):
    monkeypatch.setenv("DEVLOOPER_EMBEDDINGS", "openai:text-embedding-3-small")
    assert Context().embeddings == "openai:text-embedding-3-small"
    assert Context(embeddings=None).embeddings is None  # an explicit value wins, even None


@pytest.mark.parametrize(
    ("spec", "why"),
    [("text-embedding-3-small", "not provider:model"), ("openai:", "not provider:model"),
     ("nosuch:model", "cannot load embedding model 'nosuch:model'")],
)
def test_a_bad_embedding_model_is_refused_before_any_model_call(capsys, spec, why, tmp_path):
    code = cli.main([
        "run", "x", "--model", "openai:tiny", "--base-url", "http://127.0.0.1:9/v1", "--embeddings", spec,
        "--output", str(tmp_path / "o"),
    ])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == 2 and why in text
    assert not (tmp_path / "o").exists()  # nothing was started
    with pytest.raises(ConfigError, match=re.escape(why)):
        check_embeddings(Context(embeddings=spec))  # a server's run stops at its start the same way


def test_openai_embeddings_need_a_key_or_a_server(capsys, tmp_path):
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        load_embeddings("openai:text-embedding-3-small")
    local = load_embeddings("openai:nomic-embed-text", "http://127.0.0.1:11434/v1")
    assert local.model == "nomic-embed-text" and local.check_embedding_ctx_length is False  # text, not token ids


def test_studio_shows_the_embedding_model_setting_but_not_the_object():
    from devlooper import graph

    context = graph.get_context_jsonschema()["properties"]
    assert context["embeddings"].get("description") and context["embeddings_base_url"].get("description")
    assert "embedding_model" not in context
    assert "embedding_model" not in settings_of(Context(embedding_model=SynonymEmbeddings()))
