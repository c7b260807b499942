"""Counting a prompt's tokens: with tiktoken when its encoding is at hand, else an estimate.

tiktoken (installed with langchain-openai) fetches its encoding once and caches
it; offline, or where the download fails, prompts are measured at
``CHARS_PER_TOKEN`` characters a token, the rough ratio of code and English.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from ..budgets import CHARS_PER_TOKEN

ENCODING = "o200k_base"  # the encoding of OpenAI's current models; close enough for others


@cache
def _encoding() -> Any | None:
    try:
        import tiktoken

        return tiktoken.get_encoding(ENCODING)
    except Exception:  # not installed, or no network for its first download: estimate
        return None


def count_tokens(text: str) -> int:
    encoding = _encoding()
    if encoding is None:
        return -(-len(text) // CHARS_PER_TOKEN)
    return len(encoding.encode(text, disallowed_special=()))


def tokenizer_name() -> str:
    return f"tiktoken {ENCODING}" if _encoding() is not None else f"estimate ({CHARS_PER_TOKEN} characters a token)"
