"""Run one command: limits, a wall-clock timeout, bounded output, nothing left behind.

The process is waited for with ``waitpid`` in a worker thread rather than
asyncio's ``Process.wait``, which also waits for the pipes to close and so
would hang on a background child that inherited them. The whole process
group is killed after the command ends, whether it exited or timed out, so a
stray ``sleep &`` does not outlive it; under bubblewrap the pid namespace
dies with its first process, which catches children that left the group.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from ..bounded import BoundedBuffer
from .base import ExecResult, Kill
from .limits import MB, classify

OUTPUT_CAP = 1_000_000  # bytes kept per stream (head + tail)
GRACE = 5.0  # seconds to drain pipes after the process group is killed
WATCH_INTERVAL = 0.05  # seconds between two looks at the command's memory
PAGE = os.sysconf("SC_PAGE_SIZE")


class Attachment(Protocol):
    """Something set up around one command (its network): given file descriptors to pass,
    told when the command started (may raise: the command is then killed) and when it ended."""

    pass_fds: tuple[int, ...]

    def started(self, proc: subprocess.Popen) -> None: ...

    def finished(self) -> None: ...


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path | str,
    env: dict[str, str],
    timeout: float,
    cap: int = OUTPUT_CAP,
    memory_mb: int | None = None,
    preexec: Callable[[], None] | None = None,
    attach: Attachment | None = None,
) -> ExecResult:
    """Run ``argv`` in its own session; every way it can end comes back as data.

    Everything blocking (spawning, waiting, reading /proc) happens in a worker
    thread, so the event loop of a server is never held up.
    """
    procs: list[subprocess.Popen] = []
    try:
        return await asyncio.to_thread(
            run_process_sync, argv, cwd=cwd, env=env, timeout=timeout, cap=cap, memory_mb=memory_mb,
            preexec=preexec, started_procs=procs, attach=attach,
        )
    except asyncio.CancelledError:
        for proc in procs:
            kill_tree(proc.pid, walk=proc.poll() is None)
        raise


def run_process_sync(
    argv: Sequence[str],
    *,
    cwd: Path | str,
    env: dict[str, str],
    timeout: float,
    cap: int = OUTPUT_CAP,
    memory_mb: int | None = None,
    preexec: Callable[[], None] | None = None,
    started_procs: list[subprocess.Popen] | None = None,
    attach: Attachment | None = None,
) -> ExecResult:
    started = time.monotonic()
    try:
        return _run(argv, cwd, env, timeout, cap, memory_mb, preexec, started_procs, attach, started)
    finally:
        if attach is not None:
            attach.finished()


def _run(argv, cwd, env, timeout, cap, memory_mb, preexec, started_procs, attach, started) -> ExecResult:
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=preexec,
            pass_fds=attach.pass_fds if attach is not None else (),
        )
    except FileNotFoundError as exc:
        return ExecResult(127, stderr=f"{exc.filename}: command not found", duration=time.monotonic() - started)
    if started_procs is not None:
        started_procs.append(proc)
    if attach is not None:
        try:
            attach.started(proc)
        except BaseException:
            kill_tree(proc.pid)
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                stream.close()
            raise
    out, err = BoundedBuffer(cap), BoundedBuffer(cap)
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    killed: Kill | None = None
    deadline = started + timeout
    pidfd = _pidfd(proc.pid)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                killed = "timeout"
                break
            if _wait(proc, pidfd, min(left, WATCH_INTERVAL) if memory_mb else left):
                break
            if memory_mb and tree_rss(proc.pid) > memory_mb * MB:
                killed = "memory"
                break
    finally:
        if pidfd is not None:
            os.close(pidfd)
    # Walk the tree only while the process is unreaped: a reaped pid may be reused.
    kill_tree(proc.pid, walk=proc.poll() is None)
    proc.wait()
    for reader in readers:
        reader.join(GRACE)
    kill = killed or classify(proc.returncode, bytes(err.tail or err.head))
    code = 137 if kill == "memory" and proc.returncode < 0 else proc.returncode
    return buffered_result(code, out, err, killed=kill, started=started)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # before Linux 5.3 or Python 3.9
        return None


def _wait(proc: subprocess.Popen, pidfd: int | None, timeout: float) -> bool:
    """Whether ``proc`` ended within ``timeout``, known the moment it does through its
    pidfd: ``Popen.wait(timeout)`` polls with growing sleeps, and sees a command that
    took 10 ms up to 6 ms late."""
    if pidfd is None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    select.select([pidfd], [], [], timeout)
    return proc.poll() is not None


def buffered_result(
    exit_code: int, out: BoundedBuffer, err: BoundedBuffer, *, killed: Kill | None, started: float
) -> ExecResult:
    """A finished command's result from its bounded output: a timeout reads as exit 124."""
    timed_out = killed == "timeout"
    return ExecResult(
        exit_code=124 if timed_out else exit_code,
        stdout=out.text(),
        stderr=err.text(),
        timed_out=timed_out,
        killed=killed,
        truncated=bool(out.dropped or err.dropped),
        dropped=out.dropped + err.dropped,
        duration=time.monotonic() - started,
    )


def _pump(stream, buf: BoundedBuffer) -> None:
    with stream:
        while chunk := stream.read1(1 << 16):
            buf.write(chunk)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(name))
    return tree


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux ``/proc``; just ``pid`` elsewhere)."""
    if not os.path.isdir("/proc"):
        return [pid]
    tree, found, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(tree.get(p, ()))
    return found


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants."""
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


def kill_tree(pid: int, *, walk: bool = True) -> None:
    """SIGKILL the process group of ``pid`` and (``walk``) any descendant that left it."""
    # Find the descendants before killing: the children of a killed process move to init.
    others = [p for p in descendants(pid) if p != pid] if walk else []
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for p in others:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
