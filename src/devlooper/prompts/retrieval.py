"""The code a prompt shows: whole files when they fit, else the most relevant chunks.

Files are split into chunks along the language's own boundaries (functions and
classes first: langchain-text-splitters' code splitters) and ranked with BM25
(langchain-community's ``BM25Retriever``) against a query made of the failing
tests, their messages and the tail of the output. Identifiers are split into
their words (``parse_config`` and ``parseConfig`` both match "parse" and
"config"), since a traceback names functions, not sentences.

With an embedding model configured (``Context.embeddings``) the ranking is BM25's
and the embedding similarity's fused (``semantic.HybridRanker``): a ``Ranker`` is
any function of (chunks, query) to chunks, and ``rank`` (BM25) is the default.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath

from langchain_community.retrievers import BM25Retriever
from langchain_core.documents import Document
from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

from ..sandboxes.workspace import FILE_CAP

CHUNK_CHARS = 1_500  # a function or class of ordinary size is one chunk
QUERY_CHARS = 4_000  # characters of output tail a query holds
LANGUAGES = {
    ".py": Language.PYTHON, ".js": Language.JS, ".jsx": Language.JS, ".mjs": Language.JS, ".cjs": Language.JS,
    ".ts": Language.TS, ".tsx": Language.TS, ".rs": Language.RUST, ".go": Language.GO, ".java": Language.JAVA,
    ".c": Language.C, ".h": Language.C, ".cpp": Language.CPP, ".rb": Language.RUBY, ".md": Language.MARKDOWN,
}


@dataclass(frozen=True)
class Chunk:
    path: str
    start: int  # first line, from 1
    end: int  # last line
    text: str

    def render(self) -> str:
        return f"--- {self.path} (lines {self.start}-{self.end})\n{self.text}"


@cache
def _splitter(suffix: str) -> RecursiveCharacterTextSplitter:
    language = LANGUAGES.get(suffix)
    if language is None:
        return RecursiveCharacterTextSplitter(chunk_size=CHUNK_CHARS, chunk_overlap=0, add_start_index=True)
    return RecursiveCharacterTextSplitter.from_language(
        language, chunk_size=CHUNK_CHARS, chunk_overlap=0, add_start_index=True
    )


@cache
def _definitions(suffix: str) -> re.Pattern[str] | None:
    """Where a top-level definition starts, from the splitter's own separators for the
    language (those before the blank line: ``\\nclass ``, ``\\ndef ``, ``\\nfn `` ...)."""
    language = LANGUAGES.get(suffix)
    if language is None or language is Language.MARKDOWN:  # markdown's separators are regexes
        return None
    seps = RecursiveCharacterTextSplitter.get_separators_for_language(language)
    top = seps[: seps.index("\n\n")] if "\n\n" in seps else []
    return re.compile("|".join(re.escape(sep) for sep in top)) if top else None


def _pieces(path: str, content: str) -> list[tuple[int, str]]:
    """(offset, text): one piece per definition; one larger than a chunk is split further
    by the splitter (which alone would merge small definitions into one chunk)."""
    suffix = PurePosixPath(path).suffix
    pattern = _definitions(suffix)
    cuts = [0] + ([m.start() + 1 for m in pattern.finditer(content)] if pattern else []) + [len(content)]
    out = []
    for start, end in zip(cuts, cuts[1:]):
        piece = content[start:end]
        if len(piece) <= CHUNK_CHARS:
            out.append((start, piece))
            continue
        last = 0
        for doc in _splitter(suffix).create_documents([piece]):
            at = doc.metadata.get("start_index", -1)
            at = last if at < 0 else at  # the splitter could not place it: it follows the one before
            out.append((start + at, doc.page_content))
            last = at
    return out


def chunks(path: str, content: str) -> list[Chunk]:
    """``content`` split into chunks with their line ranges (a file larger than what the
    state may hold is indexed in its first ``FILE_CAP`` characters)."""
    content = content[:FILE_CAP]
    out = []
    line, offset = 1, 0
    for start, text in _pieces(path, content):
        line += content.count("\n", offset, start)
        offset = start
        text = text.rstrip("\n")
        if text.strip():
            out.append(Chunk(path, line, line + text.count("\n"), text))
    return out


IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CAMEL = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def words(text: str) -> list[str]:
    """BM25's terms: every identifier, and the words it is made of."""
    out = []
    for ident in IDENTIFIER.findall(text):
        out.append(ident.lower())
        parts = [p.lower() for piece in ident.split("_") for p in CAMEL.findall(piece)]
        if len(parts) > 1:
            out += parts
    return out


def documents(candidates: list[Chunk]) -> list[Document]:
    """The chunks as a retriever indexes them: the path with the text, the index in ``i``."""
    return [Document(f"{c.path}\n{c.text}", metadata={"i": i}) for i, c in enumerate(candidates)]


def bm25(docs: list[Document]) -> BM25Retriever:
    """A BM25 retriever over ``docs`` that returns them all, best first."""
    return BM25Retriever.from_documents(docs, preprocess_func=words, k=len(docs))


def rank(candidates: list[Chunk], query: str) -> list[Chunk]:
    """``candidates``, most relevant to ``query`` first (BM25)."""
    if len(candidates) < 2 or not words(query):
        return list(candidates)
    return [candidates[d.metadata["i"]] for d in bm25(documents(candidates)).invoke(query)]


Ranker = Callable[[list[Chunk], str], list[Chunk]]


def pick(ranked: list[Chunk], budget: int) -> list[Chunk]:
    """The best chunks that fit in ``budget`` characters, shown in file and line order."""
    chosen, used = [], 0
    for chunk in ranked:
        size = len(chunk.text) + len(chunk.path) + 32
        if used + size <= budget:
            chosen.append(chunk)
            used += size
    return sorted(chosen, key=lambda c: (c.path, c.start))


def relevant_code(files: dict[str, str], query: str, ordered: list[str], budget: int, ranker: Ranker = rank) -> str:
    """The code diagnose sees: every file whole (in ``ordered`` order) when all fit in
    ``budget`` characters, else the chunks of all files most relevant to ``query``
    (chunks of the files named first come first, where a ranker has to choose)."""
    if sum(len(files[p]) + len(p) + 8 for p in ordered) <= budget:
        return "\n\n".join(f"--- {p}\n{files[p]}" for p in ordered) or "(none)"
    every = [c for path in ordered for c in chunks(path, files[path])]
    shown = pick(ranker(every, query), budget)
    return "\n\n".join(c.render() for c in shown) or "(none)"


def failure_query(run: dict) -> str:
    """What a failure is about: the failing tests, their messages, the end of the output."""
    failures = run.get("failures") or []
    named = "\n".join(f"{f['name']} {f['message'][:1000]}" for f in failures[:20])
    return f"{named}\n{run.get('output', '')[-QUERY_CHARS:]}"
