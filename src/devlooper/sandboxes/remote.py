"""What the remote backends (E2B, Modal) share: environment, paths, build steps,
and a sandbox that outlives faults of the provider.

A remote sandbox gets its toolchain from the template's image; the steps of
the template (setup commands, base packages) and the layers are either baked
into a prebuilt image or replayed on a fresh sandbox. ``$DEVLOOPER_ENV`` is a
fixed directory there (``ENV_DIR``), made by the first step together with the
template's ``env_links`` into the workdir, so a template's commands work on
every backend alike. The runtime's tool homes (the venv, npm's prefix,
``CARGO_HOME``) are inside it (``tool_env``), so what an install fetched is
part of the cached environment and visible to the tests, which run as the same
user.

``RemoteSandbox`` keeps the project as the harness last wrote or took it; when
the provider says the sandbox is gone (its lifetime ended, it was killed), it
builds a new one from the template, the layers and those files, and runs the
operation again, so a dead sandbox never reaches the model as a test failure.
"""

from __future__ import annotations

import posixpath
import shlex
import abc
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ..layers import Layer
from ..paths import normalize
from ..templates.base import EnvTemplate
from .base import (
    UNATTENDED_ENV,
    Drift,
    ExecResult,
    ProjectEntry,
    Sandbox,
    SandboxError,
    SandboxGoneError,
    SandboxStartupError,
)
from .workspace import FILE_CAP, ignored

T = TypeVar("T")
clock = time.monotonic  # what lifetimes are measured with (a test may stand in a fake clock)

ENV_DIR = "/opt/devlooper/env"  # $DEVLOOPER_ENV in a remote sandbox: what installs add

# Where the environment is, and what every backend's commands run with.
REMOTE_ENV = {
    "DEVLOOPER_ENV": ENV_DIR,
    **UNATTENDED_ENV,
    "npm_config_update_notifier": "false",
}


def tool_env(template: EnvTemplate) -> dict[str, str]:
    """Variables that point the runtime's tools at the environment directory, so that
    installs and tests (one user) share what installs put there."""
    if template.runtime == "python":
        return {"VIRTUAL_ENV": ENV_DIR}
    if template.runtime == "node":
        return {"npm_config_prefix": ENV_DIR}
    if template.runtime == "rust":
        # Crates fetched by an install are found by `cargo test --offline`; the image's
        # toolchain (rustup's RUSTUP_HOME) stays where the image put it.
        return {"CARGO_HOME": f"{ENV_DIR}/cargo"}
    return {}


def tool_path(template: EnvTemplate) -> list[str]:
    """Directories put before the image's PATH: the venv's, the cargo home's, the
    official rust image's toolchain (its CARGO_HOME is no longer the one in use)."""
    if template.runtime == "python":
        return [f"{ENV_DIR}/bin"]
    if template.runtime == "node":
        return [f"{ENV_DIR}/bin"]
    if template.runtime == "rust":
        return [f"{ENV_DIR}/cargo/bin", "/usr/local/cargo/bin"]
    return []


def command_env(template: EnvTemplate, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Everything a command in the sandbox is given (nothing of this machine's)."""
    return {**REMOTE_ENV, **tool_env(template), **(extra or {})}


def remote_path(template: EnvTemplate, path: str) -> str:
    """A project path (validated) under the template's workdir."""
    return posixpath.join(template.workdir, normalize(path))


def remote_cwd(template: EnvTemplate, cwd: str | None) -> str:
    return remote_path(template, cwd) if cwd else template.workdir


def shell(command: str | Sequence[str], template: EnvTemplate | None = None) -> str:
    """One shell command line, stdin closed so that ``input()`` fails at once, with the
    template's tool directories first on the image's own PATH (kept: it finds the toolchain)."""
    line = command if isinstance(command, str) else shlex.join(command)
    dirs = tool_path(template) if template is not None else []
    prefix = f"export PATH={shlex.quote(':'.join(dirs))}:\"$PATH\"; " if dirs else ""
    # RUSTUP_HOME: where the official rust image keeps the toolchain, should the provider
    # not carry the image's ENV over.
    if template is not None and template.runtime == "rust":
        prefix += 'export RUSTUP_HOME="${RUSTUP_HOME:-/usr/local/rustup}"; '
    return f"{prefix}( {line} ) < /dev/null"


def prepare_step(template: EnvTemplate) -> str:
    """Make the environment directory and the workdir, and link ``env_links`` into the workdir.

    A link may point at what is not installed yet (node_modules before npm runs)."""
    lines = [f"mkdir -p {ENV_DIR} {shlex.quote(template.workdir)}"]
    for name in template.env_links:
        link = remote_path(template, name)
        lines.append(f"mkdir -p {shlex.quote(posixpath.dirname(link))}")
        lines.append(f"ln -sfn {shlex.quote(posixpath.join(ENV_DIR, normalize(name)))} {shlex.quote(link)}")
    return " && ".join(lines)


def runtime_step(template: EnvTemplate) -> list[str]:
    """What makes the environment directory the runtime's: a venv for python (installs
    then need no root and land in the cached environment)."""
    if template.runtime == "python":
        return ['python3 -m venv "$DEVLOOPER_ENV" || python -m venv "$DEVLOOPER_ENV"']
    return []


def base_steps(template: EnvTemplate) -> list[str]:
    """The template's own environment steps, before any layer (``prepare_step`` first,
    which on a backend with users runs as root; every later step as the user)."""
    steps = [prepare_step(template), *runtime_step(template), *template.setup_commands]
    if template.base_packages:
        steps.append(template.install_command.format(packages=" ".join(shlex.quote(p) for p in template.base_packages)))
    return steps


def layer_command(template: EnvTemplate, layer: Layer) -> str:
    if layer["kind"] == "install":
        return template.install_command.format(packages=layer["spec"])
    return layer["spec"]


LISTING_END = "\0--devlooper-hashes--\0"


def listing_command(template: EnvTemplate) -> str:
    """One command, run in the workdir, that lists the project part of the workspace.

    Each entry is printed as ``KIND SIZE PATH`` and NUL-terminated (``f`` file, ``l``
    link, ``o`` anything else); then the sha256 of every regular file no larger than
    ``FILE_CAP`` (``sha256sum -z`` prints names unescaped). ``find`` never follows a
    link, and ignored names are pruned so a build tree is never walked or hashed."""
    prunes = []
    for pattern in template.not_project():
        pattern = pattern.rstrip("/")
        test = "-path" if "/" in pattern else "-name"
        prunes.append(f"{test} {shlex.quote('./' + pattern if test == '-path' else pattern)}")
    prune = f"\\( {' -o '.join(prunes)} \\) -prune -o " if prunes else ""
    kinds = (
        "\\( -type f -printf 'f %s %P\\0' \\) -o \\( -type l -printf 'l 0 %P\\0' \\) "
        "-o \\( ! -type d -printf 'o 0 %P\\0' \\)"
    )
    return (
        f"find . -mindepth 1 {prune}{kinds} && printf '\\0--devlooper-hashes--\\0' && "
        f"find . -mindepth 1 {prune}-type f -size -{FILE_CAP + 1}c -exec sha256sum -z -- {{}} +"
    )


def parse_listing(template: EnvTemplate, result: ExecResult) -> list[ProjectEntry]:
    """The entries ``listing_command`` printed, with the digests of the regular files."""
    if not result.ok or result.truncated or LISTING_END not in result.stdout:
        raise SandboxError(f"listing the project files failed:\n{result.output[-2000:]}")
    listing, hashes = result.stdout.split(LISTING_END, 1)
    digests = {}
    for line in filter(None, hashes.split("\0")):
        digest, _, path = line.partition("  ")
        digests[path.removeprefix("./")] = digest
    patterns = template.not_project()
    found = []
    for line in filter(None, listing.split("\0")):
        kind, size, path = line.split(" ", 2)
        if ignored(path, patterns):  # a path pattern find's -name cannot express
            continue
        kinds = {"f": "file", "l": "link", "o": "other"}
        found.append(ProjectEntry(path, kinds[kind], int(size), digests.get(path) if kind == "f" else None))
    return sorted(found, key=lambda e: e.path)


def remove_command(template: EnvTemplate, path: str) -> list[str]:
    """Remove one entry of the workspace (a link itself, never its target)."""
    return ["rm", "-f", "--", posixpath.join(template.workdir, path)]


def first_command(layers: Sequence[Layer]) -> int:
    """Index of the first command layer: the layers before it never saw the project."""
    return next((i for i, layer in enumerate(layers) if layer["kind"] == "command"), len(layers))


# Lifetimes. A remote sandbox is billed while it lives: it is created with a short
# lifetime, extended while the run uses it, cut to IDLE_LIFETIME when the run pauses,
# and killed when the run ends. REVIVE_LAYER_TIMEOUT bounds each layer replayed when a
# sandbox that died is rebuilt (each ran once already within the run's own timeout).
ACTIVE_LIFETIME = 900  # seconds a sandbox in use lives past its last extension
EXTEND_AFTER = 120  # seconds between two extensions (one API call each)
IDLE_LIFETIME = 600  # seconds a parked sandbox (a paused run) waits for its run
REVIVE_LAYER_TIMEOUT = 900


class RemoteSandbox(Sandbox):
    """What E2B and Modal share: the project as the harness knows it, lifetime
    extension, and rebuilding a sandbox the provider lost.

    Each backend implements the primitives (``_open`` ... ``_add_layer``) and raises
    ``SandboxGoneError`` when its provider says the sandbox no longer exists; every
    public operation then rebuilds (once) and runs again."""

    def __init__(self, spec) -> None:
        super().__init__(spec)
        self.files: dict[str, str] = {}  # the project files as last written or taken
        self._extended = 0.0  # monotonic time of the last lifetime extension
        self._reviving = False
        self.revivals = 0  # sandboxes rebuilt after the provider lost one (for tests and logs)

    # --- what each backend provides -------------------------------------------------
    @abc.abstractmethod
    async def _open(self, layers: Sequence[Layer]) -> None:
        """Create a sandbox whose environment holds ``layers`` (no command layer among them)."""

    @abc.abstractmethod
    async def _drop(self) -> None:
        """Forget the handle of a sandbox that is gone (killing it if it still answers)."""

    async def _extend(self, seconds: float) -> None:
        """Let the sandbox live ``seconds`` more from now (where the provider can)."""

    @abc.abstractmethod
    async def _write(self, path: str, content: str) -> None: ...

    @abc.abstractmethod
    async def _read(self, path: str) -> str: ...

    @abc.abstractmethod
    async def _delete(self, path: str) -> None: ...

    @abc.abstractmethod
    async def _list(self) -> list[ProjectEntry]: ...

    @abc.abstractmethod
    async def _read_bytes(self, path: str) -> bytes: ...

    @abc.abstractmethod
    async def _remove(self, path: str) -> None: ...

    @abc.abstractmethod
    async def _exec(self, command, *, timeout: float, cwd: str | None, env: dict[str, str] | None) -> ExecResult: ...

    @abc.abstractmethod
    async def _add_layer(self, layer: Layer, *, timeout: float) -> ExecResult: ...

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        """The environment with ``spec.layers``: the installs before the first command
        layer when the sandbox is created, the rest replayed in it, as a rebuild does."""
        layers = list(self.spec.layers)
        blind = first_command(layers)
        await self._open(layers[:blind])
        self._extended = clock()
        await self._replay(layers[blind:], REVIVE_LAYER_TIMEOUT)

    async def _replay(self, layers: Sequence[Layer], timeout: float) -> None:
        for layer in layers:
            result = await self._add_layer(layer, timeout=timeout)
            if not result.ok:
                raise SandboxStartupError(f"replaying layer {layer['spec']!r} failed:\n{result.output[-2000:]}")

    async def _revive(self) -> None:
        """Build a new sandbox equal to the lost one: the layers, then the project files,
        the command layers (which saw the project when they first ran), the files again."""
        layers = list(self.layers)
        blind = first_command(layers)
        self._reviving = True
        try:
            await self._drop()
            await self._open(layers[:blind])
            self._extended = clock()
            for path, content in self.files.items():
                await self._write(path, content)
            await self._replay(layers[blind:], REVIVE_LAYER_TIMEOUT)
            await self._sync(dict(self.files))
        finally:
            self._reviving = False
        self.revivals += 1

    async def _guarded(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op``, keeping the sandbox alive; rebuild once if the provider lost it."""
        if not self._reviving and clock() - self._extended > EXTEND_AFTER:
            await self._keep_alive()
        try:
            return await op()
        except SandboxGoneError:
            if self._reviving:
                raise
        await self._revive()
        return await op()

    async def _keep_alive(self) -> None:
        try:
            await self._extend(ACTIVE_LIFETIME)
        except SandboxGoneError:
            await self._revive()
        self._extended = clock()

    # --- the Sandbox protocol, over the primitives -------------------------------------
    async def write_file(self, path: str, content: str) -> None:
        await self._guarded(lambda: self._write(path, content))
        self.files[normalize(path)] = content

    async def read_file(self, path: str) -> str:
        return await self._guarded(lambda: self._read(path))

    async def delete_file(self, path: str) -> None:
        await self._guarded(lambda: self._delete(path))
        self.files.pop(normalize(path), None)

    async def list_project(self) -> list[ProjectEntry]:
        return await self._guarded(self._list)

    async def read_project_bytes(self, path: str) -> bytes:
        return await self._guarded(lambda: self._read_bytes(path))

    async def remove_entry(self, path: str) -> None:
        await self._guarded(lambda: self._remove(path))
        self.files.pop(path, None)

    async def sync_files(self, files: dict[str, str]) -> None:
        await self._guarded(lambda: self._sync(files))
        self.files = dict(files)

    async def _sync(self, files: dict[str, str]) -> None:
        await Sandbox.sync_files(self, files)

    async def reconcile(self, files: dict[str, str]) -> Drift:
        drift = await super().reconcile(files)
        taken = {**files, **{p: c for p, c in drift.changed.items() if c is not None}}
        self.files = {p: c for p, c in taken.items() if drift.changed.get(p, c) is not None}
        return drift

    async def exec(
        self,
        command: str | Sequence[str],
        *,
        timeout: float,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        network: bool = False,
    ) -> ExecResult:
        return await self._guarded(lambda: self._exec(command, timeout=timeout, cwd=cwd, env=env))

    async def add_layer(self, layer: Layer, *, timeout: float) -> ExecResult:
        return await self._guarded(lambda: self._add_layer(layer, timeout=timeout))

    def with_layers(self, layers: Sequence[Layer]) -> None:
        """Record that the environment holds ``layers`` (a reconnected sandbox)."""
        self.spec = dataclasses.replace(self.spec, layers=list(layers))
        self.layers = list(layers)
