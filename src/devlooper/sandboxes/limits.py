"""Resource limits for commands in the local sandbox, and how a kill is named.

Limits are set with util-linux ``prlimit`` *inside* the sandbox, so that the
process-count limit applies to the sandbox's own user namespace rather than to
every process of the user on the host. Memory is enforced twice: a watchdog
kills the command when its processes' resident memory passes ``memory_mb``
(reported as a ``memory`` kill), and the address-space limit is a per-process
backstop that a single huge allocation hits at once.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
from dataclasses import dataclass

from ..errors import ConfigError
from .base import Kill

MB = 1 << 20


@dataclass(frozen=True)
class Limits:
    memory_mb: int | None = 2048  # resident memory of all the command's processes
    address_space_mb: int | None = 8192  # per process; generous: runtimes reserve address space
    cpu_seconds: int | None = None  # per process; None: derived from the timeout
    processes: int | None = 512  # processes and threads in the sandbox
    file_size_mb: int | None = 1024  # largest file a command may write

    @classmethod
    def from_env(cls) -> Limits:
        """Defaults, overridden by ``DEVLOOPER_LIMIT_<FIELD>`` (0 removes a limit)."""
        values = {}
        for name in ("memory_mb", "address_space_mb", "cpu_seconds", "processes", "file_size_mb"):
            raw = os.environ.get(f"DEVLOOPER_LIMIT_{name.upper()}")
            if raw is not None:
                try:
                    values[name] = int(raw) or None
                except ValueError:
                    raise ConfigError(f"DEVLOOPER_LIMIT_{name.upper()} must be an integer, not {raw!r}") from None
        return cls(**values)

    def cpu_for(self, timeout: float) -> int:
        """CPU seconds per process: a busy loop cannot outlive its wall-clock budget."""
        if self.cpu_seconds is not None:
            return self.cpu_seconds
        return int(timeout * (os.cpu_count() or 1)) + 5

    def prlimit_args(self, timeout: float, *, nproc_base: int = 0) -> list[str]:
        """``prlimit`` options; ``nproc_base`` is added where the count is host-wide."""
        args = [f"--cpu={self.cpu_for(timeout)}:{self.cpu_for(timeout) + 1}"]
        if self.address_space_mb:
            args.append(f"--as={self.address_space_mb * MB}")
        if self.processes:
            args.append(f"--nproc={self.processes + nproc_base}")
        if self.file_size_mb:
            args.append(f"--fsize={self.file_size_mb * MB}")
        return args

    def rlimits(self, timeout: float, *, nproc_base: int = 0) -> list[tuple[str, int, int]]:
        """The limits as ``(resource name, soft, hard)``, as a child sets them before its exec."""
        cpu = self.cpu_for(timeout)
        out = [("RLIMIT_CPU", cpu, cpu + 1)]
        if self.address_space_mb:
            out.append(("RLIMIT_AS", self.address_space_mb * MB, self.address_space_mb * MB))
        if self.processes:
            out.append(("RLIMIT_NPROC", self.processes + nproc_base, self.processes + nproc_base))
        if self.file_size_mb:
            out.append(("RLIMIT_FSIZE", self.file_size_mb * MB, self.file_size_mb * MB))
        return out

    def setrlimits(self, timeout: float, *, nproc_base: int = 0) -> None:
        """The same limits for the current process (used in a child when ``prlimit`` is missing)."""
        for name, soft, hard in self.rlimits(timeout, nproc_base=nproc_base):
            resource.setrlimit(getattr(resource, name), (soft, hard))

def prlimit_binary() -> str | None:
    return shutil.which("prlimit")


# What a command's runtime prints when an allocation fails under the address-space limit,
# and when a fork or a thread fails under the process limit.
_OOM_MARKERS = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc", b"out of memory")
_NPROC_MARKERS = (
    b"fork: Resource temporarily unavailable",
    b"fork: retry",
    b"can't start new thread",
    b"BlockingIOError: [Errno 11] Resource temporarily unavailable",
)


def classify(returncode: int, stderr_tail: bytes) -> Kill | None:
    """Which limit ended a command, judged from its status and the end of its stderr.

    A signal shows up as a negative return code (direct child) or as 128+N
    (through a shell or bubblewrap).
    """
    sig = -returncode if returncode < 0 else returncode - 128 if 128 < returncode < 160 else None
    if sig == signal.SIGXCPU:
        return "cpu"
    if sig == signal.SIGXFSZ:
        return "file_size"
    tail = stderr_tail[-4096:]
    if returncode != 0 and any(m in tail for m in _OOM_MARKERS):
        return "memory"
    if returncode != 0 and any(m in tail for m in _NPROC_MARKERS):
        return "processes"
    return None
