"""Embedding similarity fused with BM25: how code chunks are ranked when an embedding
model is configured (``Context.embeddings`` or ``Context.embedding_model``).

BM25 finds the chunks that share words with the failure; an embedding model also
finds those that mean the same thing in other words (a test about "totals" and a
function ``accumulate``). The two rankings are fused by weighted reciprocal rank
fusion (langchain's ``EnsembleRetriever``), the vectors kept in langchain-core's
``InMemoryVectorStore`` for the one query.

Embedding costs time and tokens, so:

- every chunk is embedded once per process: vectors are cached by the hash of the
  chunk's text (the same chunk in the next iteration, or in a file's fix, is not
  sent again), at most ``CACHED_VECTORS`` of them, least recently used dropped;
- at most ``MAX_EMBEDDED_CHUNKS`` chunks are embedded for one ranking: the first
  ones, which are those of the files the failure names, then the tests (see
  ``prompts.relevant_files``); the rest are ranked by BM25 alone;
- an embedding call that fails (network, authentication, a reply that is not one
  vector per text) never fails the step: the ranking is BM25's alone, and a
  ``warning`` progress event says why;
- after a failure the model is left alone for ``FAILURE_COOLDOWN`` seconds in this
  process: a server that is down or hangs (each call may wait its timeout, with one
  retry) must not cost every later prompt of the run that wait again.

This module is imported only when an embedding model is configured.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict

from langchain_classic.retrievers.ensemble import EnsembleRetriever
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore

from .. import events
from ..models import _first_line
from .retrieval import Chunk, bm25, documents, rank, words

log = logging.getLogger(__name__)

MAX_EMBEDDED_CHUNKS = 256  # chunks embedded for one ranking (a few hundred KB of code)
CACHED_VECTORS = 8_192  # vectors kept per process (~50 MB at 1,536 floats each)
WEIGHTS = [0.5, 0.5]  # BM25, embeddings: neither knows better than the other
FAILURE_COOLDOWN = 300.0  # seconds a model that failed is not asked again

_failed_until: dict[str, float] = {}  # model name -> monotonic time it may be asked again

_vectors: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
_lock = threading.Lock()  # files are fixed concurrently, their prompts built in threads


class BadEmbeddingReply(ValueError):
    """The embedding model answered, but not with one vector of numbers per text."""


def _checked(vectors: object, count: int) -> list[list[float]]:
    if not isinstance(vectors, list) or len(vectors) != count:
        got = len(vectors) if isinstance(vectors, list) else type(vectors).__name__
        raise BadEmbeddingReply(f"expected {count} vectors, got {got}")
    out = []
    for vector in vectors:
        try:
            floats = [float(x) for x in vector]
        except (TypeError, ValueError):
            raise BadEmbeddingReply("a vector that is not a list of numbers") from None
        if not floats or not all(math.isfinite(x) for x in floats):
            raise BadEmbeddingReply("an empty vector, or one with a NaN or infinite value")
        out.append(floats)
    if len({len(v) for v in out}) > 1:
        raise BadEmbeddingReply("vectors of different lengths")
    return out


class CachedEmbeddings(Embeddings):
    """``inner``, sending only the texts it has not embedded before in this process
    (keyed by ``name``, the model, and the text's SHA-256), and checking its replies."""

    def __init__(self, inner: Embeddings, name: str) -> None:
        self.inner = inner
        self.name = name

    def _key(self, text: str) -> tuple[str, str]:
        return self.name, hashlib.sha256(text.encode()).hexdigest()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        keys = [self._key(t) for t in texts]
        with _lock:
            known = {k: _vectors[k] for k in keys if k in _vectors}
            for k in known:
                _vectors.move_to_end(k)
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in known))
        if missing:
            fresh = _checked(self.inner.embed_documents(missing), len(missing))
            with _lock:
                for text, vector in zip(missing, fresh):
                    key = self._key(text)
                    known[key] = _vectors[key] = vector
                while len(_vectors) > CACHED_VECTORS:
                    _vectors.popitem(last=False)
        return [known[k] for k in keys]

    def embed_query(self, text: str) -> list[float]:
        return _checked([self.inner.embed_query(text)], 1)[0]


class HybridRanker:
    """A ``retrieval.Ranker``: BM25 and embedding similarity, fused."""

    def __init__(self, embeddings: Embeddings, name: str) -> None:
        self.embeddings = CachedEmbeddings(embeddings, name)

    def __call__(self, candidates: list[Chunk], query: str) -> list[Chunk]:
        if len(candidates) < 2 or not query.strip():
            return list(candidates)
        if time.monotonic() < _failed_until.get(self.embeddings.name, 0.0):
            return rank(candidates, query)  # failed a moment ago: its warning was given then
        docs = documents(candidates)
        embedded = docs[:MAX_EMBEDDED_CHUNKS]
        retrievers = [bm25(docs)] if words(query) else []
        try:
            store = InMemoryVectorStore.from_documents(embedded, self.embeddings)
            retrievers.append(store.as_retriever(search_kwargs={"k": len(embedded)}))
            weights = WEIGHTS if len(retrievers) == 2 else [1.0]
            found = EnsembleRetriever(retrievers=retrievers, weights=weights, id_key="i").invoke(query)
        except Exception as exc:  # a failing embedding model must not fail the step
            with _lock:
                _failed_until[self.embeddings.name] = time.monotonic() + FAILURE_COOLDOWN
            message = (
                f"embedding model failed ({type(exc).__name__}: {_first_line(exc)}); code ranked by BM25 "
                f"alone, without it for the next {FAILURE_COOLDOWN:.0f} s"
            )
            log.warning(message)
            events.emit({"event": "warning", "about": "embeddings", "message": message})
            return rank(candidates, query)
        order = [d.metadata["i"] for d in found]
        # Chunks neither retriever returned (BM25 returns all; only the unembedded when the
        # query has no words) keep their order, after the ranked ones.
        seen = set(order)
        return [candidates[i] for i in order] + [c for i, c in enumerate(candidates) if i not in seen]
