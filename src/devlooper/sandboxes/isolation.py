"""How the local sandbox confines a command: one strategy object per isolation.

``bwrap`` (the default) runs every command under bubblewrap with the smallest
view of the host (see ``bwrap``), and gives build steps a network of their own
(see ``netns``). ``none`` runs a plain subprocess with the same resource limits
and cleared environment, and nothing else: generated code can read the host's
files and reach its network. It is only ever used because the user asked for
it; when bubblewrap cannot run, the run refuses to start and says why.

``LocalSettings`` is the typed home of the local backend's settings (isolation,
limits, cache directory and budget), small enough to be saved with a run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from platformdirs import user_cache_dir
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError
from . import bwrap, netns
from .limits import Limits, prlimit_binary
from .process import Attachment

IsolationName = Literal["bwrap", "none"]
ISOLATIONS: tuple[str, ...] = ("bwrap", "none")
DEFAULT_CACHE_MAX_MB = 4096
ENV_MOUNT = "/env"  # where the environment appears inside bubblewrap: a fixed path needs no relocation
CACHE_MOUNTS = {"pip": "/cache/pip", "npm": "/cache/npm"}  # download caches, by name


def default_cache_dir() -> str:
    return os.environ.get("DEVLOOPER_CACHE_DIR") or user_cache_dir("devlooper")


class LocalSettings(BaseModel):
    """The local backend's settings; ``from_env`` reads the ``DEVLOOPER_*`` variables."""

    model_config = ConfigDict(frozen=True)

    isolation: IsolationName = Field(default="bwrap", description="bwrap (required by default) or none.")
    cache_dir: str = Field(default_factory=default_cache_dir, description="Environments and download caches.")
    cache_max_mb: int = Field(
        default=DEFAULT_CACHE_MAX_MB, ge=0, description="Size the environment cache is pruned to (0: no cap)."
    )
    limits: Limits = Field(default_factory=Limits.from_env)

    @classmethod
    def from_env(cls, isolation: str | None = None) -> LocalSettings:
        """Settings from ``isolation`` (Context.isolation) and the environment."""
        wanted = isolation or os.environ.get("DEVLOOPER_ISOLATION") or "bwrap"
        if wanted not in ISOLATIONS:
            raise ConfigError(f"unknown isolation {wanted!r}; known: {', '.join(ISOLATIONS)}")
        raw = os.environ.get("DEVLOOPER_CACHE_MAX_MB")
        try:
            cap = int(raw) if raw is not None else DEFAULT_CACHE_MAX_MB
        except ValueError:
            raise ConfigError(f"DEVLOOPER_CACHE_MAX_MB must be an integer (megabytes), not {raw!r}") from None
        return cls(isolation=wanted, cache_max_mb=max(0, cap))


@dataclass
class Step:
    """One command to run, with the host places it may use."""

    argv: list[str]
    workspace: Path  # host directory seen as the project (an empty one for installs)
    cwd: str | None  # relative to the workspace
    tmp: Path  # host directory that is the command's private /tmp
    env_dir: Path  # host directory of the environment
    env_writable: bool
    network: bool  # a network of its own, with outbound access (build steps only)
    caches: dict[str, Path] = field(default_factory=dict)  # writable download caches, by name
    read_only: dict[str, str] = field(default_factory=dict)  # declared host paths -> path inside
    etc: Path | None = None  # the minimal /etc (``bwrap.minimal_etc``), for bubblewrap


@dataclass
class Prepared:
    argv: list[str]
    cwd: Path
    preexec: Callable[[], None] | None = None
    attach: Attachment | None = None


class Isolation(Protocol):
    name: str
    relocates: bool  # the environment is seen at its own host path (so a copy must be relocated)

    def check(self, *, network: bool) -> None:
        """Raise ``ConfigError`` (one line: why, and what to do) when it cannot run here."""

    def owner(self) -> tuple[int, int] | None:
        """The uid/gid that must own what commands may change, or None if ours is fine."""

    def seen(self, step: Step) -> tuple[str, str, dict[str, str]]:
        """The environment, the /tmp and the download caches, as the command sees them."""

    def prepare(self, step: Step, env: dict[str, str], limits: Limits, timeout: float, workdir: str) -> Prepared:
        """The full command line (limits, confinement), its directory, preexec and attachment."""


class Bubblewrap:
    name = "bwrap"
    relocates = False

    def check(self, *, network: bool) -> None:
        ok, why = bwrap.usable()
        if not ok:
            raise ConfigError(
                f"generated code cannot be isolated: {why}. Install bubblewrap (apt-get install bubblewrap), "
                "enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1), "
                "or pass --isolation none to run it unconfined at your own risk"
            )
        if network:
            ok, why = slirp_usable()
            if not ok:
                raise ConfigError(
                    f"build steps cannot get a network of their own: {why}. Install slirp4netns "
                    "(apt-get install slirp4netns) and make /dev/net/tun usable, "
                    "or set DEVLOOPER_LAYER_NETWORK=false for offline builds"
                )

    def owner(self) -> tuple[int, int] | None:
        return bwrap.owner_ids()

    def seen(self, step: Step) -> tuple[str, str, dict[str, str]]:
        return ENV_MOUNT, "/tmp", {name: CACHE_MOUNTS[name] for name in step.caches}

    def prepare(self, step: Step, env: dict[str, str], limits: Limits, timeout: float, workdir: str) -> Prepared:
        argv, preexec = list(step.argv), None
        prlimit = prlimit_binary()
        if prlimit:  # inside the sandbox: the process limit then counts its user namespace only
            argv = [prlimit, *limits.prlimit_args(timeout), "--", *argv]
        else:
            preexec = functools.partial(limits.setrlimits, timeout)
        inside = workdir + ("/" + step.cwd if step.cwd else "")
        mounts = self._mounts(step, workdir)
        network, extra = None, []
        if step.network:
            resolv = step.tmp.parent / "resolv.conf"  # outside the command's reach: beside its /tmp
            if not resolv.exists():
                resolv.write_text(netns.RESOLV_CONF)
            mounts.ro[str(resolv)] = "/etc/resolv.conf"
            network = netns.SlirpNetwork()
            extra = network.bwrap_args
        wrapped = bwrap.wrap(argv, mounts, workdir=inside, env=env, toolchains=_toolchains(env), extra=extra)
        return Prepared(wrapped, step.tmp.parent, preexec, network)

    def resident(self, step: Step, env: dict[str, str], workdir: str, helper: list[str]) -> list[str]:
        """The command line of a resident sandbox (``resident``) that would run ``step``:
        the same namespaces and mounts as ``prepare``'s, with ``helper`` in place of the
        command and no environment (each command brings its own). Build steps, which
        need a network of their own, are not run this way."""
        if step.network:
            raise ValueError("a step with a network runs in a sandbox of its own")
        return bwrap.wrap(helper, self._mounts(step, workdir), workdir=workdir, env={}, toolchains=_toolchains(env))

    @staticmethod
    def _mounts(step: Step, workdir: str) -> bwrap.Mounts:
        mounts = bwrap.Mounts(
            rw={str(step.workspace): workdir, str(step.tmp): "/tmp"}, etc=str(step.etc) if step.etc else None
        )
        (mounts.rw if step.env_writable else mounts.ro)[str(step.env_dir)] = ENV_MOUNT
        for name, path in step.caches.items():
            mounts.rw[str(path)] = CACHE_MOUNTS[name]
        mounts.ro.update(step.read_only)
        return mounts


class NoIsolation:
    name = "none"
    relocates = True

    def check(self, *, network: bool) -> None:
        return None

    def owner(self) -> tuple[int, int] | None:
        return None

    def seen(self, step: Step) -> tuple[str, str, dict[str, str]]:
        return str(step.env_dir), str(step.tmp), {name: str(path) for name, path in step.caches.items()}

    def prepare(self, step: Step, env: dict[str, str], limits: Limits, timeout: float, workdir: str) -> Prepared:
        argv, preexec = list(step.argv), None
        base = _user_processes()  # without a user namespace the process limit counts them all
        prlimit = prlimit_binary()
        if prlimit:
            argv = [prlimit, *limits.prlimit_args(timeout, nproc_base=base), "--", *argv]
        else:
            preexec = functools.partial(limits.setrlimits, timeout, nproc_base=base)
        cwd = step.workspace / step.cwd if step.cwd else step.workspace
        return Prepared(argv, cwd, preexec, None)


def _toolchains(env: dict[str, str]) -> list[str]:
    """The template's tools are on PATH (``runtimes.tool_path``): their toolchains are bound."""
    return [d for d in env.get("PATH", "").split(":") if d and not d.startswith(ENV_MOUNT)]


def isolation_for(name: str) -> Isolation:
    if name == "bwrap":
        return Bubblewrap()
    if name == "none":
        return NoIsolation()
    raise ConfigError(f"unknown isolation {name!r}; known: {', '.join(ISOLATIONS)}")


@functools.cache
def slirp_usable() -> tuple[bool, str]:
    """Whether a bubblewrap command can be given a slirp4netns network here (tried once)."""
    if netns.slirp_binary() is None:
        return False, "slirp4netns is not installed"
    from .process import run_process_sync  # noqa: PLC0415

    network = netns.SlirpNetwork()
    argv = bwrap.wrap(["true"], bwrap.Mounts(), workdir="/", extra=network.bwrap_args)
    try:
        result = run_process_sync(argv, cwd="/", env={}, timeout=30, attach=network)
    except Exception as exc:  # noqa: BLE001 - any failure is the reason to report
        return False, str(exc)
    if not result.ok:
        return False, (result.stderr.strip().splitlines() or [f"exit {result.exit_code}"])[-1]
    return True, ""


def _user_processes() -> int:
    """Processes of our uid: without a user namespace the process limit counts them all."""
    uid, count = os.getuid(), 0
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        try:
            if name.isdigit() and os.stat(f"/proc/{name}").st_uid == uid:
                count += 1
        except OSError:
            continue
    return count

