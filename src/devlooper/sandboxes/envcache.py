"""The local environment cache: one directory per key, with its metadata beside it.

An entry is built in a scratch directory and renamed into place, so a reader
never sees a half-built environment; a crash leaves only scratch, which the
next run removes once its builder process is gone. Builders of the same key
take a file lock, so two concurrent runs build an environment once and the
second one reuses it.

A built entry is hostile to the host: the build step that made it ran
generated code with the entry writable. So the harness keeps its own data
outside it (``<key>.json`` beside ``<key>/``, written after the rename), copies
entries keeping links as links, and never follows a link in one.

The cache has a budget (``LocalSettings.cache_max_mb``): after a build, the
least recently used entries are removed until the rest fits. Using an entry
touches its metadata; entries used in the last ``IN_USE`` seconds, or by this
process, are never removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..layers import Layer
from .workspace import TooLarge, read_capped, write_nofollow

LOCK_POLL = 0.2  # seconds between two tries to take a build lock
IN_USE = 3600.0  # seconds since its last use during which an entry is never pruned
META_CAP = 16_000_000  # bytes of one entry's metadata read back (it holds a command's workspace changes)


@dataclass(frozen=True)
class CacheEntry:
    key: str
    size: int  # bytes
    last_used: float  # epoch seconds
    template: str
    layers: list[dict]


class EnvCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / key

    def meta_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def scratch(self) -> Path:
        return self.root / f".build-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def ready(self, key: str) -> bool:
        """An entry is usable once both it and its metadata exist (the metadata is written last)."""
        return self.path(key).is_dir() and self.meta_path(key).is_file()

    @contextlib.asynccontextmanager
    async def locked(self, key: str) -> AsyncIterator[None]:
        """Hold the build lock of ``key``; polls so that a cancelled wait releases nothing."""
        fd = await asyncio.to_thread(os.open, self.root / f"{key}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(LOCK_POLL)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def publish(
        self,
        scratch: Path,
        key: str,
        template: str,
        layers: Sequence[Layer],
        changes: dict | None = None,
        output: dict | None = None,
    ) -> Path:
        """Move a finished build into place, then write its metadata beside it (the
        caller holds the lock of ``key``). ``changes`` are the workspace changes of a
        command layer, replayed when the entry is reused; ``output`` is what its step
        printed (bounded), given again on reuse so that a warm cache reads as a cold one."""
        final = self.path(key)
        if final.exists():  # an entry without metadata: a crash between the two steps
            remove_tree(final)
        self._forget_listings(key)  # those of an earlier build of the key, removed half-way
        scratch.rename(final)
        info = {
            "template": template,
            "layers": [{"kind": x["kind"], "spec": x["spec"], **({"workspace": x["workspace"]} if "workspace" in x else {})} for x in layers],
            "size": tree_size(final),
            "changes": changes,
            "output": output,
        }
        write_nofollow(self.root, f"{key}.json", json.dumps(info).encode())
        return final

    def info(self, key: str) -> dict:
        """The metadata of an entry (written by the host, but read as carefully as the rest)."""
        try:
            return json.loads(read_capped(self.root, f"{key}.json", META_CAP))
        except (OSError, TooLarge, ValueError):
            return {}

    # --- what a read-only command printed about an entry (the packages it holds) ---------
    # An entry does not change once published (commands run with the environment read-only),
    # so neither does such a listing: it is kept beside the entry's metadata and removed
    # with it. A key is rebuilt only after its entry was removed, and an unpinned install
    # may then resolve to other versions: the listings go first.
    def _listing_path(self, key: str, command: str) -> Path:
        return self.root / f"{key}.listing-{hashlib.sha256(command.encode()).hexdigest()[:16]}.json"

    def kept_listing(self, key: str, command: str) -> str | None:
        """What ``command`` printed in the environment ``key``, if it was kept."""
        path = self._listing_path(key, command)
        try:
            data = json.loads(read_capped(self.root, path.name, META_CAP))
        except (OSError, TooLarge, ValueError):
            return None
        return data.get("stdout") if isinstance(data, dict) and isinstance(data.get("stdout"), str) else None

    def keep_listing(self, key: str, command: str, stdout: str) -> None:
        if self.ready(key):  # never for an entry that is being removed
            write_nofollow(self.root, self._listing_path(key, command).name, json.dumps({"stdout": stdout}).encode())

    def _forget_listings(self, key: str) -> None:
        for path in self.root.glob(f"{key}.listing-*.json"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def touch(self, key: str) -> None:
        """Record a use: pruning removes the least recently used entries first."""
        with contextlib.suppress(OSError):
            os.utime(self.meta_path(key), follow_symlinks=False)

    def entries(self) -> list[CacheEntry]:
        """Every published entry, least recently used first."""
        found = []
        for meta in self.root.glob("*.json"):
            key = meta.name[: -len(".json")]
            if not self.path(key).is_dir():
                continue
            info = self.info(key)
            try:
                used = meta.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            found.append(CacheEntry(key, int(info.get("size") or 0), used, str(info.get("template", "?")), info.get("layers") or []))
        return sorted(found, key=lambda e: e.last_used)

    def prune(self, max_bytes: int, keep: Iterable[str] = ()) -> list[str]:
        """Remove least recently used entries until the cache fits ``max_bytes`` (0: no cap).

        Entries in ``keep``, used in the last ``IN_USE`` seconds, or being built
        (their lock is held) stay."""
        if max_bytes <= 0:
            return []
        keep, now = set(keep), time.time()
        entries = self.entries()
        total = sum(e.size for e in entries)
        removed = []
        for entry in entries:
            if total <= max_bytes:
                break
            if entry.key in keep or now - entry.last_used < IN_USE:
                continue
            if self.remove(entry.key):
                total -= entry.size
                removed.append(entry.key)
        return removed

    def remove(self, key: str) -> bool:
        """Remove an entry unless a builder holds its lock; True when it is gone."""
        lock = self.root / f"{key}.lock"
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            # The listings go first, then the metadata: without it nobody takes the entry as ready.
            self._forget_listings(key)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.meta_path(key))
            trash = self.root / f".trash-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            with contextlib.suppress(FileNotFoundError):
                self.path(key).rename(trash)
                remove_tree(trash)
            return True  # the lock file stays: a builder may be waiting on it
        finally:
            os.close(fd)

    def clear(self) -> int:
        """Remove every entry no builder is using; the number removed."""
        return sum(self.remove(entry.key) for entry in self.entries())

    def clean_stale(self) -> int:
        """Remove scratch and trash directories whose process no longer exists."""
        removed = 0
        for entry in [*self.root.glob(".build-*"), *self.root.glob(".trash-*")]:
            try:
                pid = int(entry.name.split("-")[1])
                os.kill(pid, 0)
                continue
            except ProcessLookupError:
                pass
            except (ValueError, IndexError, PermissionError):
                continue
            remove_tree(entry)
            removed += 1
        return removed


def tree_size(path: Path) -> int:
    """Bytes used by a tree, counted with lstat (a link is its own size, never its target's)."""
    total = 0
    for base, dirs, files in os.walk(path):  # os.walk does not follow links to directories
        for name in dirs + files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(base, name)).st_blocks * 512
    return total


def remove_tree(path: Path) -> None:
    """Remove a tree the sandbox could have written, whatever its modes (as root or not)."""
    def make_writable(func, target, _exc) -> None:  # a read-only directory's entries cannot be removed
        with contextlib.suppress(OSError):
            parent = os.path.dirname(target)
            if not os.path.islink(parent):
                os.chmod(parent, 0o700)
            func(target)

    shutil.rmtree(path, onerror=make_writable)


def copy_tree(src: Path, dst: Path) -> None:
    """Copy an environment, keeping links as links (never followed), modes and (as root)
    owners; reflinks where possible."""
    if shutil.which("cp"):
        # -a implies --no-dereference: a link the sandbox left stays a link in the copy.
        subprocess.run(["cp", "-a", "--reflink=auto", str(src), str(dst)], check=True, capture_output=True)
    else:
        shutil.copytree(src, dst, symlinks=True)


def chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid, follow_symlinks=False)
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(base, name), uid, gid, follow_symlinks=False)


SCRIPT_CAP = 1_000_000  # bytes of a script read for relocation (a venv's scripts are a few hundred)


def relocate(env_dir: Path, old: Path, new: Path) -> None:
    """Point a venv's scripts at another home (shebangs and pyvenv.cfg hold absolute paths).

    The venv was written by build steps: only regular files are rewritten, through
    no link (``bin`` itself may be one), and each read is capped."""
    old_prefix, new_prefix = str(old).encode(), str(new).encode()
    names = []
    try:
        bindir_fd = os.open(env_dir / "bin", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        bindir_fd = None
    if bindir_fd is not None:
        try:
            names = [f"bin/{e.name}" for e in os.scandir(bindir_fd) if e.is_file(follow_symlinks=False)]
        finally:
            os.close(bindir_fd)
    for rel in [*names, "pyvenv.cfg"]:
        try:
            data = read_capped(env_dir, rel, SCRIPT_CAP)
            mode = stat.S_IMODE(os.lstat(env_dir / rel).st_mode)
        except (OSError, TooLarge):
            continue
        if rel != "pyvenv.cfg" and not (data.startswith(b"#!") and old_prefix in data[:4096]):
            continue
        if old_prefix in data:
            write_nofollow(env_dir, rel, data.replace(old_prefix, new_prefix), mode)
