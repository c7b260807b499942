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

from ..errors import DevlooperError
from ..paths import normalize
from ..layers import Layer

if TYPE_CHECKING:
    from ..context import Context
    from ..templates.base import EnvTemplate

Kill = Literal["timeout", "memory", "cpu", "processes", "file_size", "signal"]


class SandboxError(DevlooperError):
    """The sandbox itself failed (not the code running in it)."""


class SandboxStartupError(SandboxError):
    """The sandbox or its environment could not be created."""


class SandboxTimeoutError(SandboxError, TimeoutError):
    """An operation on the sandbox (not a command in it) did not finish in time."""


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
        self._written: dict[str, str] = {}  # path -> sha256 of what we last wrote

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

    async def sync_files(self, files: dict[str, str]) -> None:
        """Make the workspace's project files equal ``files`` (writes only what changed)."""
        for path in [p for p in self._written if p not in files]:
            await self.delete_file(path)
            del self._written[path]
        for path, content in files.items():
            digest = hashlib.sha256(content.encode()).hexdigest()
            if self._written.get(path) != digest:
                await self.write_file(path, content)
                self._written[path] = digest

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

    @abc.abstractmethod
    async def add_layer(self, layer: Layer, *, timeout: float) -> ExecResult:
        """Run an environment step; on success it becomes part of the environment."""

    def layer_command(self, layer: Layer) -> str:
        if layer["kind"] == "install":
            return self.template.install_command.format(packages=layer["spec"])
        return layer["spec"]
