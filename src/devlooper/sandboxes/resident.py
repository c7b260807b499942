"""A started sandbox that stays: one bubblewrap process per sandbox runs its commands.

Creating namespaces and mounting the sandbox's view of the host costs tens of
milliseconds per bubblewrap; a test loop runs many commands in the same view.
``Resident`` starts bubblewrap once with ``resident_helper`` inside and sends
it one command at a time: each is a fork inside the same namespaces, with the
same limits, timeout, output cap and cleared environment as a one-shot
command, and the helper kills everything the command left before it answers.

The host does not trust the helper's answers more than a command's output:
frames are checked (known kind, bounded length), output is kept in a
``BoundedBuffer``, and a helper that stops answering (killed or stopped by a
command) is killed with its whole tree, past the command's own timeout plus a
grace period; the command's result then says so, and the next command starts a
new resident sandbox.
"""

from __future__ import annotations

import functools
import marshal
import os
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..bounded import BoundedBuffer
from .base import ExecResult
from .limits import classify
from .process import OUTPUT_CAP, buffered_result, kill_tree

READY_TIMEOUT = 20.0  # seconds for the helper to say it is ready
BACKSTOP = 10.0  # seconds past a command's timeout before the host gives up on the helper
FRAME_CAP = 1 << 20  # the helper never sends more in one frame; more means it is not the helper


class ResidentError(Exception):
    """The resident sandbox could not start or stopped answering."""


def interpreter() -> str | None:
    """The Python the helper runs with: the base interpreter, which the sandbox binds."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    base = os.path.realpath(sys.base_prefix)
    if os.path.isfile(exe) and (exe.startswith(base + "/") or exe.startswith("/usr/")):
        return exe
    return None


@functools.cache
def helper_source() -> str:
    """Read once, when the first sandbox process starts (in a worker thread), not at
    import: a server imports the backend from inside its event loop."""
    return Path(__file__).with_name("resident_helper.py").read_text()


def helper_argv(python: str) -> list[str]:
    return [python, "-I", "-S", "-c", helper_source()]


def exit_status(payload: bytes) -> tuple[int, str | None]:
    """The exit frame's payload: ``CODE`` or ``CODE timeout`` / ``CODE memory``."""
    words = payload.split(b" ")
    if len(words) > 2 or not words[0].isdigit() or len(words[0]) > 3 or words[1:] not in ([], [b"timeout"], [b"memory"]):
        raise ResidentError("the sandbox process sent a malformed message")
    return int(words[0]), words[1].decode() if len(words) == 2 else None


class Resident:
    """One running sandbox process (``argv`` is its whole bubblewrap command line)."""

    def __init__(self, argv: list[str], *, cwd: Path | str) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env={}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.alive = True
        self._busy = threading.Lock()  # held while a command runs: its thread owns the pipes
        self._buf = bytearray()
        self._errors = BoundedBuffer(8192)  # bubblewrap's own complaints, for the error message
        self._stderr = threading.Thread(target=self._pump_errors, daemon=True)
        self._stderr.start()
        try:
            kind, _ = self._frame(time.monotonic() + READY_TIMEOUT)
        except ResidentError:
            self._close()
            raise ResidentError(f"the sandbox process did not start: {self._errors.text().strip()[-500:]}") from None
        if kind != b"r":
            self._close()
            raise ResidentError("the sandbox process did not start: unexpected first message")

    def _pump_errors(self) -> None:
        with self.proc.stderr as stream:
            while chunk := stream.read1(1 << 14):
                self._errors.write(chunk)

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise ResidentError("the sandbox process stopped answering")
            chunk = os.read(fd, 1 << 18)
            if not chunk:
                raise ResidentError("the sandbox process ended")
            self._buf += chunk
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _frame(self, deadline: float) -> tuple[bytes, bytes]:
        header = self._read(5, deadline)
        kind, size = header[:1], struct.unpack(">I", header[1:])[0]
        if kind not in (b"r", b"o", b"e", b"x") or size > FRAME_CAP:
            raise ResidentError("the sandbox process sent a malformed message")
        return kind, self._read(size, deadline)

    def run(
        self,
        argv: list[str],
        *,
        cwd: str,
        env: dict[str, str],
        timeout: float,
        rlimits: list[tuple[str, int, int]],
        memory_mb: int | None,
        cap: int = OUTPUT_CAP,
    ) -> ExecResult:
        """Run one command; a helper that fails is killed and the failure is the result."""
        started = time.monotonic()
        # marshal: the helper runs this same interpreter, and decodes it without an import.
        request = marshal.dumps(
            {"argv": list(argv), "cwd": cwd, "env": dict(env), "timeout": float(timeout),
             "rlimits": [tuple(r) for r in rlimits], "memory_mb": memory_mb}
        )
        out, err = BoundedBuffer(cap), BoundedBuffer(cap)
        deadline = started + timeout + BACKSTOP
        with self._busy:
            if not self.alive:
                return ExecResult(125, stderr="[the sandbox process was closed]", duration=0.0)
            return self._exchange(request, out, err, started, deadline)

    def _exchange(self, request: bytes, out: BoundedBuffer, err: BoundedBuffer, started: float, deadline: float) -> ExecResult:
        try:
            os.write(self.proc.stdin.fileno(), struct.pack(">I", len(request)) + request)
            while True:
                kind, payload = self._frame(deadline)
                if kind == b"o":
                    out.write(payload)
                elif kind == b"e":
                    err.write(payload)
                elif kind == b"x":
                    code, killed = exit_status(payload)
                    break
                else:
                    raise ResidentError("the sandbox process sent a malformed message")
        except (ResidentError, OSError) as exc:
            self._close()
            timed_out = time.monotonic() >= deadline
            err.write(f"\n[the sandbox process failed: {exc}]".encode())
            return buffered_result(125, out, err, killed="timeout" if timed_out else None, started=started)
        kill = killed or classify(code, bytes(err.tail or err.head))
        return buffered_result(code, out, err, killed=kill, started=started)

    def kill(self) -> None:
        """Kill the sandbox process and everything in it (its pid namespace dies with it).
        Safe from any thread: a command waiting on it then ends, and closes the pipes."""
        if self.proc.poll() is None:
            kill_tree(self.proc.pid)

    def close(self) -> None:
        """Kill the sandbox process; its pipes are closed here, or by the command that
        is still running in another thread once it sees the process gone."""
        self.kill()
        if self._busy.acquire(blocking=False):
            try:
                self._close()
            finally:
                self._busy.release()

    def _close(self) -> None:
        if not self.alive:
            return
        self.alive = False
        self.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            stream.close()
        self._stderr.join(1.0)
