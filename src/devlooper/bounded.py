"""Bounded text: keep the head and the tail, say how much was dropped.

Test output can be gigabytes (``yes``); the model needs its start (collection
errors) and its end (the summary and the last traceback).
"""

from __future__ import annotations


class BoundedBuffer:
    """Accumulates bytes in constant memory: the first and last ``limit // 2`` bytes."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def write(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    @property
    def dropped(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        if self.dropped:
            return f"{head}\n[... {self.dropped} bytes dropped ...]\n{tail}"
        return head + tail


def clip(text: str, limit: int) -> tuple[str, int]:
    """Clip ``text`` to about ``limit`` characters; return it and the count dropped."""
    if len(text) <= limit:
        return text, 0
    head = limit // 2
    tail = limit - head
    dropped = len(text) - head - tail
    return f"{text[:head]}\n[... {dropped} characters dropped ...]\n{text[-tail:]}", dropped
