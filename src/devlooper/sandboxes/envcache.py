"""The local environment cache: one directory per template and ordered layers.

An entry is built in a scratch directory and renamed into place, so a reader
never sees a half-built environment; a crash leaves only scratch, which the
next run removes once its builder process is gone. Builders of the same key
take a file lock, so two concurrent runs build an environment once and the
second one reuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from ..layers import Layer

LOCK_POLL = 0.2  # seconds between two tries to take a build lock


class EnvCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / key

    def scratch(self) -> Path:
        return self.root / f".build-{os.getpid()}-{uuid.uuid4().hex[:8]}"

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

    def publish(self, scratch: Path, key: str, template: str, layers: Sequence[Layer]) -> Path:
        """Move a finished build into place (the caller holds the lock of ``key``)."""
        info = {"template": template, "layers": [{"kind": x["kind"], "spec": x["spec"]} for x in layers]}
        (scratch / ".devlooper-env.json").write_text(json.dumps(info, indent=1))
        final = self.path(key)
        scratch.rename(final)
        return final

    def clean_stale(self) -> int:
        """Remove scratch directories whose builder process no longer exists."""
        removed = 0
        for entry in self.root.glob(".build-*"):
            try:
                pid = int(entry.name.split("-")[1])
                os.kill(pid, 0)
                continue
            except ProcessLookupError:
                pass
            except (ValueError, IndexError, PermissionError):
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
        return removed


def copy_tree(src: Path, dst: Path) -> None:
    """Copy an environment, keeping links, modes and (as root) owners; reflinks where possible."""
    if shutil.which("cp"):
        subprocess.run(["cp", "-a", "--reflink=auto", str(src), str(dst)], check=True, capture_output=True)
    else:
        shutil.copytree(src, dst, symlinks=True)


def chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid, follow_symlinks=False)
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(base, name), uid, gid, follow_symlinks=False)


def relocate(env_dir: Path, old: Path, new: Path) -> None:
    """Point a venv's scripts at another home (shebangs and pyvenv.cfg hold absolute paths)."""
    old_prefix, new_prefix = str(old).encode(), str(new).encode()
    bindir = env_dir / "bin"
    for script in bindir.iterdir() if bindir.is_dir() else ():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(b"#!") and old_prefix in data[:4096]:
            script.write_bytes(data.replace(old_prefix, new_prefix))
    cfg = env_dir / "pyvenv.cfg"
    if cfg.exists():
        cfg.write_bytes(cfg.read_bytes().replace(old_prefix, new_prefix))
