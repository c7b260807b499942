"""The sandbox protocol: one async interface, several backends.

An exit code is data: a failing test, a failed install and a command killed by
its timeout all come back as an ``ExecResult``. Only a failure of the sandbox
itself (it cannot start, it died, its service is unreachable) raises.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..errors import ConfigError, DevlooperError
from ..layers import Layer
from ..paths import UnsafePathError, normalize
from .workspace import FILE_CAP, TooLarge, ignored

# What every backend's commands run with: nobody is at the terminal (pagers, prompts,
# colours and progress bars off), output is not held back, and no Python bytecode is
# written: Python trusts a cached .pyc whose source has the same mtime (in seconds) and
# size, so a fix written within the second of the last test run, at the same size, would
# run as the old code.
UNATTENDED_ENV = {
    "TERM": "dumb",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "MANPAGER": "cat",
    "NO_COLOR": "1",
    "CI": "1",
    "DEBIAN_FRONTEND": "noninteractive",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "PIP_PROGRESS_BAR": "off",
    "npm_config_progress": "false",
    "npm_config_fund": "false",
    "npm_config_audit": "false",
    "CARGO_TERM_PROGRESS_WHEN": "never",
}

if TYPE_CHECKING:
    from ..context import Context
    from ..templates.base import EnvTemplate

Kill = Literal["timeout", "memory", "cpu", "processes", "file_size", "signal"]


class SandboxError(DevlooperError, RuntimeError):
    """The sandbox itself failed (not the code running in it). Also a RuntimeError: a
    LangGraph server sends a RuntimeError's message to its client (the reason a sandbox
    could not start), where it hides other exceptions' behind "An internal error occurred"."""


class SandboxStartupError(SandboxError):
    """The sandbox or its environment could not be created."""


class SandboxTimeoutError(SandboxError, TimeoutError):
    """An operation on the sandbox (not a command in it) did not finish in time."""


class SandboxGoneError(SandboxError):
    """The sandbox no longer exists (its lifetime ended, it was killed, its host died).

    Never a test result: a remote backend rebuilds the sandbox from what the run
    holds and runs the operation again; it reaches the run only when rebuilding fails."""


class SandboxAuthError(SandboxError, ConfigError):
    """The provider refused the credentials: the run stops, as for a missing key."""


@dataclass
class ExecResult:
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    killed: Kill | None = None  # which limit ended the command, if any
    truncated: bool = False
    dropped: int = 0  # bytes dropped from the middle of stdout and stderr
    duration: float = 0.0
    reused: bool = False  # an environment step that did not run: its cached result stands in for it

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.killed is None

    @property
    def output(self) -> str:
        """stdout and stderr together, as a person would read them."""
        parts = [self.stdout.rstrip("\n"), self.stderr.rstrip("\n")]
        text = "\n".join(p for p in parts if p)
        if self.timed_out:
            text += f"\n[killed after exceeding its time limit of {self.duration:.0f}s]"
        elif self.killed:
            text += f"\n[killed: {self.killed} limit exceeded]"
        return text


@dataclass
class SandboxSpec:
    """Everything a backend needs to build a sandbox: a template and its layers."""

    template: EnvTemplate
    layers: Sequence[Layer] = field(default_factory=list)
    run_id: str = "run"
    layer_network: bool = True  # installs and environment commands may reach the network
    isolation: str | None = None  # local backend: "bwrap" or "none" (Context.isolation); None: the default
    settings: dict | None = None  # the backend's settings as the run recorded them (local: LocalSettings)
    lifetime: float | None = None  # remote backends: seconds the run may still need its sandbox; None: the default


@dataclass(frozen=True)
class ProjectEntry:
    """One entry of the workspace's project part (build outputs and caches left out)."""

    path: str  # relative, POSIX
    kind: Literal["file", "link", "other"]  # "other": a fifo, a socket, a device
    size: int
    sha256: str | None  # of a regular file no larger than ``FILE_CAP``; else None


@dataclass
class Drift:
    """How the sandbox's project files came to differ from the state's, after a step."""

    changed: dict[str, str | None] = field(default_factory=dict)  # path -> new text; None: deleted
    refused: dict[str, str] = field(default_factory=dict)  # path -> why it was not taken (it is gone)

    def note(self) -> str:
        """What the model reads in the step's result about files that were not taken."""
        return "\n".join(
            f"[{path} was not taken into the project and was removed: {why}]" for path, why in sorted(self.refused.items())
        )


def sha256_text(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def layers_key(template: EnvTemplate, layers: Sequence[Layer]) -> str:
    """A stable key for an environment: the template's setup plus the ordered layers."""
    h = hashlib.sha256(template.environment_fingerprint().encode())
    for layer in layers:
        h.update(f"\0{layer['kind']}\0{layer['spec']}".encode())
    return h.hexdigest()[:24]


class Sandbox(abc.ABC):
    """A workspace with an environment, where commands run with limits.

    Paths are relative to the workspace root (the template's workdir) and are
    validated by ``paths.normalize``. Use as ``async with`` or call ``close``.
    """

    name: str = "sandbox"

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self.template = spec.template
        self.layers: list[Layer] = []  # layers present in the environment now

    @property
    def sandbox_id(self) -> str | None:
        """The provider's id of the live sandbox, by which another process may reconnect
        to it; None for a backend whose sandboxes cannot outlive this process."""
        return None

    async def reconnect(self, sandbox_id: str, layers: Sequence[Layer]) -> bool:
        """Attach to the live sandbox ``sandbox_id``, whose environment holds ``layers``,
        instead of starting a new one; False when it is gone (the caller starts a new one).
        Only backends with a ``sandbox_id`` can."""
        return False

    async def park(self, idle: float) -> None:
        """Let go of the sandbox without killing it: it stays alive at most ``idle``
        seconds more, for ``reconnect``; a backend without ids closes it."""
        await self.close()

    @classmethod
    def check_config(cls, ctx: Context | None = None) -> None:
        """Raise ``ConfigError`` with one clear line if this backend cannot be used here.

        Called before any work (no network): a missing SDK or credential, a local
        sandbox that cannot isolate (``ctx`` holds the run's settings).
        """

    # --- lifecycle -------------------------------------------------------
    @abc.abstractmethod
    async def start(self) -> None:
        """Create the workspace and the environment (template plus ``spec.layers``)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release everything; calling it twice is harmless."""

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- files -------------------------------------------------------------
    @abc.abstractmethod
    async def write_file(self, path: str, content: str) -> None: ...

    @abc.abstractmethod
    async def read_file(self, path: str) -> str: ...

    @abc.abstractmethod
    async def delete_file(self, path: str) -> None: ...

    async def read_env_file(self, path: str) -> str:
        """A file of the environment directory ($DEVLOOPER_ENV), such as the
        package.json and lock that installs wrote; ``FileNotFoundError`` if missing."""
        result = await self.exec(["sh", "-c", 'cat "$DEVLOOPER_ENV/$1"', "sh", normalize(path)], timeout=60)
        if not result.ok:
            raise FileNotFoundError(path)
        return result.stdout

    # --- the project part of the workspace ---------------------------------------
    # Each backend lists and reads what code in the sandbox left there without trusting
    # it (no link followed, sizes capped); the comparison with the state is shared.
    @abc.abstractmethod
    async def list_project(self) -> list[ProjectEntry]:
        """Every entry of the workspace except ``template.not_project()`` (build outputs,
        caches, the results file, links into the environment)."""

    @abc.abstractmethod
    async def read_project_bytes(self, path: str) -> bytes:
        """The bytes of a regular project file, never through a link; ``TooLarge`` above
        ``FILE_CAP``, ``FileNotFoundError`` when it is gone."""

    @abc.abstractmethod
    async def remove_entry(self, path: str) -> None:
        """Remove a file, a link (never its target) or a special file; missing is fine."""

    def _tracked(self, files: dict[str, str]) -> dict[str, str]:
        """The state's files a listing can see (a file under an ignored path never shows)."""
        patterns = self.template.not_project()
        return {p: c for p, c in files.items() if not ignored(p, patterns)}

    async def sync_files(self, files: dict[str, str]) -> None:
        """Make the workspace's project files equal ``files``, checked against what is there
        now (code that ran since may have changed anything): extra entries are removed,
        differing or missing files rewritten."""
        listed = {e.path: e for e in await self.list_project()}
        for path, entry in listed.items():
            if path not in files or entry.kind != "file":
                await self.remove_entry(path)
        tracked = self._tracked(files)
        for path, content in files.items():
            entry = listed.get(path)
            if path not in tracked or entry is None or entry.kind != "file" or entry.sha256 != sha256_text(content):
                await self.write_file(path, content)

    async def reconcile(self, files: dict[str, str]) -> Drift:
        """What code that just ran changed in the project, relative to ``files`` (the state).

        A new or changed file is taken when it is UTF-8 text of at most ``FILE_CAP``
        bytes at a path the project may hold; anything else (a link, a special file,
        binary or oversized content) is refused: removed from the sandbox, or restored
        from ``files`` where the state has it, so the sandbox still equals what is taken."""
        drift = Drift()
        tracked = self._tracked(files)
        seen: set[str] = set()
        for entry in await self.list_project():
            before = tracked.get(entry.path)
            if entry.kind == "file" and before is not None and entry.sha256 == sha256_text(before):
                seen.add(entry.path)
                continue
            why = await self._take(entry, drift)
            if why is None:
                seen.add(entry.path)
                continue
            if why == "gone":  # it vanished between the listing and the read
                continue
            seen.add(entry.path)
            drift.refused[entry.path] = why
            await self.remove_entry(entry.path)
            if before is not None:
                await self.write_file(entry.path, before)
        for path in tracked:
            if path not in seen:
                drift.changed[path] = None
        return drift

    async def _take(self, entry: ProjectEntry, drift: Drift) -> str | None:
        """Read a new or changed entry into ``drift.changed``; else why it cannot be taken."""
        if entry.kind == "link":
            return "it is a symbolic link"
        if entry.kind == "other":
            return "it is not a regular file"
        if entry.size > FILE_CAP:
            return f"it holds {entry.size} bytes, more than the {FILE_CAP} a project file may"
        try:
            normalize(entry.path)
        except UnsafePathError as exc:
            return f"not a path a project file may have ({exc})"
        try:
            data = await self.read_project_bytes(entry.path)
        except FileNotFoundError:
            return "gone"
        except TooLarge:
            return f"it holds more than the {FILE_CAP} bytes a project file may"
        except OSError as exc:  # it became a link or a special file after the listing
            return f"it could not be read as a regular file ({exc})"
        try:
            drift.changed[entry.path] = data.decode("utf-8")
        except UnicodeDecodeError:
            return "it is not UTF-8 text"
        return None

    # --- commands ------------------------------------------------------------
    @abc.abstractmethod
    async def exec(
        self,
        command: str | Sequence[str],
        *,
        timeout: float,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        network: bool = False,
    ) -> ExecResult:
        """Run a command in the workspace. A string runs through ``bash -c``."""

    async def list_environment(self, command: str, *, timeout: float) -> ExecResult:
        """Run a command that only reads the environment (what packages it holds): its
        output is the same for as long as the environment is. The local sandbox keeps a
        successful one with its cached environment and answers from it after that."""
        return await self.exec(command, timeout=timeout)

    @abc.abstractmethod
    async def add_layer(self, layer: Layer, *, timeout: float) -> ExecResult:
        """Run an environment step; on success it becomes part of the environment."""

    def layer_command(self, layer: Layer) -> str:
        if layer["kind"] == "install":
            return self.template.install_command.format(packages=layer["spec"])
        return layer["spec"]
