"""Reading a tree that generated code could have written, without trusting it.

A workspace or a built environment is hostile to the host: a command in the
sandbox may leave links to host files, huge files, odd names or special
files there. Everything here lists with ``lstat`` (a link is reported, never
followed), opens with ``O_NOFOLLOW`` and reads at most a capped number of
bytes, so the host never reads or writes through what the sandbox left.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FILE_CAP = 1_000_000  # bytes of one project file the state may hold
MAX_ENTRIES = 20_000  # entries listed in one tree before the listing stops


class TooLarge(ValueError):
    """A file is larger than the cap it was read with."""


@dataclass(frozen=True)
class Entry:
    """One thing found in a tree: a regular file, a link or something else."""

    path: str  # relative, POSIX
    kind: str  # "file", "link" or "other" (a fifo, a socket, a device)
    size: int


def ignored(path: str, patterns: Iterable[str]) -> bool:
    """True when ``path`` or one of its directories matches a pattern (fnmatch, on a
    name or on the whole relative path): build outputs and caches, not project files."""
    parts = path.split("/")
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if fnmatch.fnmatchcase(path, pattern) or any(fnmatch.fnmatchcase(p, pattern) for p in parts):
            return True
        if path.startswith(pattern + "/"):
            return True
    return False


def scan(root: Path, ignore: Iterable[str] = ()) -> list[Entry]:
    """Every entry below ``root`` except ignored ones, without following any link."""
    patterns = list(ignore)
    found: list[Entry] = []
    todo = [""]
    while todo and len(found) < MAX_ENTRIES:
        rel_dir = todo.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if ignored(rel, patterns):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                todo.append(rel)
            elif stat.S_ISREG(st.st_mode):
                found.append(Entry(rel, "file", st.st_size))
            elif stat.S_ISLNK(st.st_mode):
                found.append(Entry(rel, "link", 0))
            else:
                found.append(Entry(rel, "other", 0))
    return sorted(found, key=lambda e: e.path)


def parent_fd(root: Path, rel: str, *, create: bool = False) -> tuple[int, str]:
    """A descriptor of the directory that holds ``root/rel``, and the entry's name.

    Each directory is opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to the
    previous one, so a link anywhere on the way fails with ``OSError`` (ELOOP or
    ENOTDIR) instead of leading out of the tree. ``create`` makes missing
    directories. The caller closes the descriptor."""
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise OSError(f"not a relative path inside the tree: {rel!r}")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def open_nofollow(root: Path, rel: str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """Open ``root/rel`` without following a link in any of its components."""
    fd, name = parent_fd(root, rel, create=bool(flags & os.O_CREAT))
    try:
        return os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=fd)
    finally:
        os.close(fd)


def read_capped(root: Path, rel: str, cap: int = FILE_CAP) -> bytes:
    """The bytes of a regular file in a hostile tree, at most ``cap`` of them.

    ``FileNotFoundError`` when it is missing, ``OSError`` when it is a link or
    not a regular file, ``TooLarge`` when it holds more than ``cap`` bytes."""
    fd = open_nofollow(root, rel, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{rel} is not a regular file")
        if st.st_size > cap:
            raise TooLarge(f"{rel} holds {st.st_size} bytes, more than the {cap} read back")
        chunks, left = [], cap + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > cap:  # it grew after the fstat
            raise TooLarge(f"{rel} holds more than the {cap} bytes read back")
        return data
    finally:
        os.close(fd)


def write_nofollow(root: Path, rel: str, data: bytes, mode: int = 0o644) -> None:
    """Write a file in a hostile tree: never through a link, parents made as needed.

    Whatever stands at the file's place and is not a regular file (a link, a
    fifo) is removed first, never followed."""
    fd, name = parent_fd(root, rel, create=True)
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(out, view):]
    finally:
        os.close(out)


def remove_nofollow(root: Path, rel: str) -> None:
    """Remove an entry of a hostile tree (a link itself, never its target); missing is fine."""
    try:
        fd, name = parent_fd(root, rel)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def digest(files: dict[str, str]) -> str:
    """A digest of a set of project files (paths and contents)."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode() + b"\0" + hashlib.sha256(files[path].encode()).digest())
    return h.hexdigest()[:24]
