"""Where a run's checkpoints live, and reading them back without the graph.

The checkpoints go to SQLite (a file, by default in the user's data directory) or
Postgres (a ``postgresql://`` URL); ``runner.open_saver`` writes them through
LangGraph's savers. Listing past runs and a thread's checkpoints only reads, and
the savers import ``langchain_core`` (a third of a second before the first row,
the compiled graph a second more), so ``devlooper runs`` and ``devlooper history``
read the rows here, from the tables both savers keep:

- SQLite: ``checkpoints`` (the checkpoint as one msgpack blob, metadata as JSON)
  and ``writes`` (what each task wrote from a checkpoint);
- Postgres: ``checkpoints`` (JSONB, scalar channel values inline),
  ``checkpoint_blobs`` (the other channel values, by channel and version) and
  ``checkpoint_writes``.

Values are decoded with the serializer's msgpack format: the state holds plain
JSON-able data, a folded channel's full value comes as :class:`Snapshot`, and
any other library object (an interrupt, a ``Send``) as :class:`Opaque`, which a
listing never reads.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import ormsgpack
from platformdirs import user_data_dir

from .errors import ConfigError

CONTEXT_KEY = "devlooper_context"  # the run's settings, in every checkpoint's metadata (runner.record_context)
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
ROOT_NS = ""  # the graph's own checkpoints; a subgraph's have a namespace
# langgraph.checkpoint.serde.jsonplus: the ext code of a DeltaChannel's full value.
EXT_DELTA_SNAPSHOT = 7


def default_db() -> Path:
    return Path(user_data_dir("devlooper")) / "checkpoints.sqlite"


def is_postgres(db: str | Path | None) -> bool:
    return isinstance(db, str) and db.startswith(POSTGRES_SCHEMES)


def sqlite_path(db: str | Path | None) -> Path:
    path = Path(db).expanduser() if db else default_db()
    if path.is_dir():
        raise ConfigError(f"--db {path} is a directory; give a file path or a postgresql:// URL")
    return path


@asynccontextmanager
async def postgres_connection(url: str) -> AsyncIterator[Any]:
    """An autocommit connection with dict rows (what LangGraph's Postgres saver needs too)."""
    try:
        import psycopg
        from psycopg.rows import dict_row
    except ImportError:
        raise ConfigError("a postgresql:// --db needs the postgres extra: pip install 'devlooper[postgres]'") from None
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"cannot connect to the Postgres checkpoint database: {first}") from None
    async with conn:
        yield conn


# --- values -------------------------------------------------------------------------
class Snapshot(NamedTuple):
    """A folded channel's whole value, stored every ``snapshot_frequency`` updates."""

    value: Any


class Opaque(NamedTuple):
    """A library object (msgpack ext ``code``), left undecoded."""

    code: int
    data: bytes


def _ext(code: int, data: bytes) -> Any:
    if code == EXT_DELTA_SNAPSHOT:
        return Snapshot(_unpack(data))
    return Opaque(code, data)


def _unpack(data: bytes) -> Any:
    return ormsgpack.unpackb(data, ext_hook=_ext, option=ormsgpack.OPT_NON_STR_KEYS)


def decode(type_: str, data: bytes | None) -> Any:
    """A value as the saver's serializer wrote it (``dumps_typed``)."""
    if type_ == "null" or data is None:
        return None
    if type_ == "msgpack":
        return _unpack(bytes(data))
    if type_ == "json":
        return json.loads(data)
    if type_ in ("bytes", "bytearray"):
        return bytes(data)
    raise ConfigError(f"a checkpoint value of type {type_!r} cannot be read here")


# --- rows ---------------------------------------------------------------------------
@dataclass
class Saved:
    """One checkpoint: LangGraph's ``Checkpoint`` dict, its metadata, and the writes made from it."""

    thread_id: str
    checkpoint_id: str
    parent_id: str | None
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    writes: list[tuple[str, str, Any]] = field(default_factory=list)  # (task id, channel, value), in order

    @property
    def values(self) -> dict[str, Any]:
        return self.checkpoint.get("channel_values") or {}

    @property
    def next(self) -> tuple[str, ...]:
        """The nodes that run from this checkpoint (LangGraph's ``StateSnapshot.next``).

        A node runs when its trigger channel holds a value newer than the node has
        seen: ``branch:to:NODE`` for a graph node, ``__start__`` for the input.
        """
        versions = self.checkpoint.get("channel_versions") or {}
        seen_by = self.checkpoint.get("versions_seen") or {}
        nodes = []
        for channel in self.values:
            node = channel.removeprefix("branch:to:") if channel.startswith("branch:to:") else None
            if node is None and channel == "__start__":
                node = channel
            if node is None or channel not in versions:
                continue
            seen = seen_by.get(node)
            if seen is None or versions[channel] > seen.get(channel, type(versions[channel])()):
                nodes.append(node)
        return tuple(sorted(nodes))


async def starts(db: str | Path | None) -> list[Saved]:
    """The first checkpoint of every thread (the one its input wrote, ``source="input"``)."""
    where = "checkpoint_ns = '' AND {source} = 'input'"
    if is_postgres(db):
        return await _postgres(str(db), where.format(source="metadata->>'source'"), ())
    return await asyncio.to_thread(_sqlite, sqlite_path(db), where.format(source="json_extract(metadata, '$.source')"), ())


async def latest(db: str | Path | None, thread_id: str) -> Saved | None:
    """The thread's newest checkpoint (the state it ended in, or stands in)."""
    where = "thread_id = {p} AND checkpoint_ns = '' ORDER BY checkpoint_id DESC LIMIT 1"
    if is_postgres(db):
        rows = await _postgres(str(db), where.format(p="%s"), (thread_id,))
    else:
        rows = await asyncio.to_thread(_sqlite, sqlite_path(db), where.format(p="?"), (thread_id,))
    return rows[0] if rows else None


async def thread(db: str | Path | None, thread_id: str) -> list[Saved]:
    """Every checkpoint of the thread, oldest first, with the writes made from each."""
    where = "thread_id = {p} AND checkpoint_ns = '' ORDER BY checkpoint_id"
    if is_postgres(db):
        return await _postgres(str(db), where.format(p="%s"), (thread_id,), writes=True)
    return await asyncio.to_thread(_sqlite, sqlite_path(db), where.format(p="?"), (thread_id,), True)


def _sqlite(path: Path, where: str, params: tuple, writes: bool = False) -> list[Saved]:
    """The rows, read in a worker thread (sqlite3 blocks; the event loop may serve other runs)."""
    if not path.exists():
        return []  # nothing was ever written there; reading creates no database
    # Read-only: a run may be writing to the same file.
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        try:
            rows = conn.execute(
                "SELECT thread_id, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
                f"FROM checkpoints WHERE {where}",
                params,
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        saved = [
            Saved(tid, cid, parent, decode(type_, blob), json.loads(meta) if meta else {})
            for tid, cid, parent, type_, blob, meta in rows
        ]
        for s in saved if writes else ():
            found = conn.execute(
                "SELECT task_id, channel, type, value FROM writes "
                "WHERE thread_id = ? AND checkpoint_ns = '' AND checkpoint_id = ? ORDER BY task_id, idx",
                (s.thread_id, s.checkpoint_id),
            ).fetchall()
            s.writes = [(task, channel, decode(type_, value)) for task, channel, type_, value in found]
        return saved
    finally:
        conn.close()


async def _postgres(url: str, where: str, params: tuple, writes: bool = False) -> list[Saved]:
    import psycopg  # noqa: PLC0415 (the postgres extra; postgres_connection explains its absence)

    blobs = (
        "(SELECT array_agg(array[bl.channel::bytea, bl.type::bytea, bl.blob]) "
        "FROM jsonb_each_text(checkpoint -> 'channel_versions') "
        "JOIN checkpoint_blobs bl ON bl.thread_id = checkpoints.thread_id "
        "AND bl.checkpoint_ns = checkpoints.checkpoint_ns "
        "AND bl.channel = jsonb_each_text.key AND bl.version = jsonb_each_text.value) AS blobs"
    )
    async with postgres_connection(url) as conn:
        try:
            cur = await conn.execute(
                f"SELECT thread_id, checkpoint_id, parent_checkpoint_id, checkpoint, metadata, {blobs} "
                f"FROM checkpoints WHERE {where}",
                params,
            )
        except psycopg.errors.UndefinedTable:
            return []
        saved = []
        for row in await cur.fetchall():
            checkpoint = dict(row["checkpoint"])
            values = dict(checkpoint.get("channel_values") or {})
            for channel, type_, blob in row["blobs"] or ():
                if (type_ := bytes(type_).decode()) != "empty":  # a channel the checkpoint holds no value of
                    values[bytes(channel).decode()] = decode(type_, blob)
            checkpoint["channel_values"] = values
            saved.append(Saved(row["thread_id"], row["checkpoint_id"], row["parent_checkpoint_id"], checkpoint, row["metadata"] or {}))
        for s in saved if writes else ():
            cur = await conn.execute(
                "SELECT task_id, channel, type, blob FROM checkpoint_writes "
                "WHERE thread_id = %s AND checkpoint_ns = '' AND checkpoint_id = %s ORDER BY task_id, idx",
                (s.thread_id, s.checkpoint_id),
            )
            s.writes = [(w["task_id"], w["channel"], decode(w["type"], w["blob"])) for w in await cur.fetchall()]
        return saved
