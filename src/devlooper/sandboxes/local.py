"""The local sandbox: a per-run workspace and a cached environment on this machine.

With bubblewrap installed (the default wherever it works) every command runs
isolated: the host read-only and home directories hidden, the workspace at
the template's workdir and the environment at ``/env`` (read-only while tests
run), a private ``/tmp``, no network except for environment layers, a cleared
environment, no capabilities, and resource limits. Without bubblewrap it
falls back to a plain subprocess with the same limits and environment, and
says so once.

Environments (a venv for the python runtime; whatever ``runtimes`` creates
for others) are cached by isolation mode, template and ordered layers. Each
prefix of the layers is an entry of its own, so a later iteration or a later
run with the same prefix starts from it instead of reinstalling.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from platformdirs import user_cache_dir

from ..paths import normalize, resolve_inside
from ..layers import Layer
from . import bwrap, runtimes, workspace
from .base import ExecResult, ProjectEntry, Sandbox, SandboxError, SandboxSpec, SandboxStartupError, layers_key
from .envcache import EnvCache, chown_tree, copy_tree, relocate
from .limits import Limits, prlimit_binary
from .process import run_process

log = logging.getLogger("devlooper.sandbox")

ENV_MOUNT = "/env"  # where the environment appears inside bubblewrap: a fixed path needs no relocation
PIP_CACHE_MOUNT = "/cache/pip"
NPM_CACHE_MOUNT = "/cache/npm"
SHARED_CACHES = {"pip": PIP_CACHE_MOUNT, "npm": NPM_CACHE_MOUNT}  # download caches shared by builds
BUILD_TIMEOUT = 900.0  # seconds for each step of the template's base environment
Isolation = Literal["auto", "bwrap", "none"]
_warned = False


def cache_root() -> Path:
    return Path(os.environ.get("DEVLOOPER_CACHE_DIR") or user_cache_dir("devlooper"))


def resolve_isolation(wanted: str) -> bool:
    """True for bubblewrap. ``auto`` falls back to a plain subprocess, once said visibly."""
    global _warned
    if wanted not in ("auto", "bwrap", "none"):
        raise SandboxStartupError(f"unknown isolation {wanted!r}; known: auto, bwrap, none")
    if wanted == "none":
        return False
    ok, why = bwrap.usable()
    if ok:
        return True
    if wanted == "bwrap":
        raise SandboxStartupError(f"isolation 'bwrap' requested but {why}")
    if not _warned:
        _warned = True
        log.warning(
            "%s: generated code runs as a plain subprocess, with resource limits but with the "
            "network and the host's files reachable (install bubblewrap to isolate it)",
            why,
        )
    return False


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


class LocalSandbox(Sandbox):
    name = "local"

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        limits: Limits | None = None,
        isolation: Isolation | None = None,
    ) -> None:
        super().__init__(spec)
        self.limits = limits or Limits.from_env()
        self.isolation: str = isolation or spec.isolation or os.environ.get("DEVLOOPER_ISOLATION", "auto")
        self.isolated = False
        self.root: Path | None = None
        self.workspace: Path | None = None
        self.env_dir: Path | None = None
        self.cache: EnvCache | None = None

    # --- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        # Blocking filesystem work runs in a thread: a server's event loop must not wait on it.
        await asyncio.to_thread(self._prepare)
        try:
            env_dir, result = await self._ensure_env(list(self.spec.layers))
        except BaseException:
            await self.close()
            raise
        if env_dir is None:
            await self.close()
            raise SandboxStartupError(f"replaying the environment's layers failed:\n{result.output[-2000:]}")
        self.env_dir = env_dir
        self.layers = list(self.spec.layers)
        await asyncio.to_thread(self._link_env)

    def _prepare(self) -> None:
        """Choose the isolation, make the workspace and private /tmp, open the cache."""
        self.isolated = resolve_isolation(self.isolation)
        self.root = Path(tempfile.mkdtemp(prefix=f"devlooper-{self.spec.run_id[:8]}-"))
        self.root.chmod(0o755)
        self.workspace = self.root / "workspace"
        for sub in ("workspace", "tmp", "tmp/home"):
            (self.root / sub).mkdir()
        owner = bwrap.owner_ids() if self.isolated else None
        if owner:
            chown_tree(self.root / "workspace", *owner)
            chown_tree(self.root / "tmp", *owner)
        self.cache = EnvCache(cache_root() / "envs" / ("bwrap" if self.isolated else "plain"))
        self.cache.clean_stale()
        self._shared_caches()

    async def close(self) -> None:
        if self.root is not None:
            await asyncio.to_thread(shutil.rmtree, self.root, True)
            self.root = None

    # --- files -------------------------------------------------------------
    async def write_file(self, path: str, content: str) -> None:
        await asyncio.to_thread(self._write, path, content)

    def _write(self, path: str, content: str) -> None:
        target = resolve_inside(self.workspace, path)
        created = [p for p in reversed(target.parents) if p.is_relative_to(self.workspace) and not p.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        owner = bwrap.owner_ids() if self.isolated else None
        if owner:  # the sandbox's user must be able to change what we wrote
            for p in [*created, target]:
                os.chown(p, *owner)

    async def read_file(self, path: str) -> str:
        def read() -> str:
            return resolve_inside(self.workspace, path).read_text(encoding="utf-8", errors="replace")

        return await asyncio.to_thread(read)

    async def delete_file(self, path: str) -> None:
        await asyncio.to_thread(lambda: resolve_inside(self.workspace, path).unlink(missing_ok=True))

    # --- the project part of the workspace, read as a hostile tree ---------------
    async def list_project(self) -> list[ProjectEntry]:
        return await asyncio.to_thread(self._list_project)

    def _list_project(self) -> list[ProjectEntry]:
        entries = workspace.scan(self.workspace, self.template.not_project())
        if len(entries) >= workspace.MAX_ENTRIES:  # a partial listing would read as deleted files
            raise SandboxError(f"the workspace holds more than {workspace.MAX_ENTRIES} project entries")
        found = []
        for entry in entries:
            digest = None
            if entry.kind == "file" and entry.size <= workspace.FILE_CAP:
                try:
                    digest = hashlib.sha256(workspace.read_capped(self.workspace, entry.path)).hexdigest()
                except (OSError, workspace.TooLarge):
                    pass  # changed under us: no digest, so it is read again and judged then
            found.append(ProjectEntry(entry.path, entry.kind, entry.size, digest))
        return found

    async def read_project_bytes(self, path: str) -> bytes:
        return await asyncio.to_thread(workspace.read_capped, self.workspace, path)

    async def remove_entry(self, path: str) -> None:
        await asyncio.to_thread(workspace.remove_nofollow, self.workspace, path)

    # --- commands ------------------------------------------------------------
    def _env(self, env_dir: str, *, building: bool) -> dict[str, str]:
        """A cleared environment: nothing of the host's leaks in (no API keys)."""
        tmp = "/tmp" if self.isolated else str(self.root / "tmp")
        pip_cache = PIP_CACHE_MOUNT if self.isolated else str(cache_root() / "pip")
        npm_cache = NPM_CACHE_MOUNT if self.isolated else str(cache_root() / "npm")
        env = {
            "PATH": ":".join([*runtimes.tool_path(self.template, Path(env_dir)), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": f"{tmp}/home",
            "TMPDIR": tmp,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TERM": "dumb",
            "PAGER": "cat",
            "GIT_PAGER": "cat",
            "MANPAGER": "cat",
            "LESS": "FRX",
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
            "DEVLOOPER_ENV": env_dir,  # the cached environment (read-only while tests run)
            # Tests get no shared download cache: an offline install must fail, not be served from it.
            "PIP_CACHE_DIR": pip_cache if building else f"{tmp}/pip-cache",
            "npm_config_cache": npm_cache if building else f"{tmp}/npm-cache",
        }
        if not building:  # no network while tests run: fail at once instead of retrying
            env["PIP_RETRIES"] = "0"
            env["npm_config_fetch_retries"] = "0"  # else npm backs off for over a minute
        env.update(runtimes.env_vars(self.template, Path(env_dir), tmp))
        return env

    def _shared_caches(self) -> None:
        owner = bwrap.owner_ids() if self.isolated else None
        for name in SHARED_CACHES:
            path = cache_root() / name
            path.mkdir(parents=True, exist_ok=True)
            if owner and path.stat().st_uid != owner[0]:
                chown_tree(path, *owner)

    async def exec(
        self,
        command: str | Sequence[str],
        *,
        timeout: float,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        network: bool = False,
    ) -> ExecResult:
        layer_steps = [self.layer_command(layer) for layer in self.layers]
        return await self._run(
            self.env_dir, command, timeout=timeout, cwd=cwd, env=env, network=network, layer_steps=layer_steps
        )

    async def _run(
        self,
        env_dir: Path,
        command: str | Sequence[str],
        *,
        timeout: float,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        network: bool = False,
        building: bool = False,
        layer_steps: Sequence[str] = (),
    ) -> ExecResult:
        """Run in the workspace with ``env_dir`` as the environment (writable when ``building``);
        ``layer_steps`` are the commands of its layers."""
        argv, popen_cwd, full_env, preexec = await asyncio.to_thread(
            self._command, env_dir, command, timeout=timeout, cwd=cwd, env=env, network=network, building=building,
            layer_steps=layer_steps,
        )
        return await run_process(
            argv, cwd=popen_cwd, env=full_env, timeout=timeout, memory_mb=self.limits.memory_mb, preexec=preexec
        )

    def _command(
        self,
        env_dir: Path,
        command: str | Sequence[str],
        *,
        timeout: float,
        cwd: str | None,
        env: dict[str, str] | None,
        network: bool,
        building: bool,
        layer_steps: Sequence[str] = (),
    ) -> tuple[list[str], Path, dict[str, str], Callable[[], None] | None]:
        """The full command line (limits, isolation), its directory, environment and preexec."""
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        host_cwd = resolve_inside(self.workspace, cwd) if cwd else self.workspace
        prlimit = prlimit_binary()
        preexec = None
        if self.isolated:
            full_env = {**self._env(ENV_MOUNT, building=building), **(env or {})}
            if prlimit:  # inside the sandbox: the process limit then counts its user namespace only
                argv = [prlimit, *self.limits.prlimit_args(timeout), "--", *argv]
            else:
                preexec = functools.partial(self.limits.setrlimits, timeout)
            workdir = self.template.workdir
            if cwd:
                workdir += "/" + str(host_cwd.relative_to(self.workspace))
            mounts = bwrap.Mounts(rw={str(self.workspace): self.template.workdir, str(self.root / "tmp"): "/tmp"})
            (mounts.rw if building else mounts.ro)[str(env_dir)] = ENV_MOUNT
            if building:
                for name, mount in SHARED_CACHES.items():
                    mounts.rw[str(cache_root() / name)] = mount
                if isinstance(command, str):
                    for archive in bwrap.package_archives(command):
                        mounts.ro[os.path.realpath(archive)] = archive
            # Local packages of the environment's layers stay visible after their own step:
            # cargo builds a path dependency from its source at every test run.
            for step in layer_steps:
                for package in bwrap.package_archives(step):
                    mounts.ro[os.path.realpath(package)] = package
            toolchains = runtimes.tool_path(self.template, Path(ENV_MOUNT))
            argv = bwrap.wrap(argv, mounts, network=network, workdir=workdir, env=full_env, toolchains=toolchains)
            return argv, self.root, full_env, preexec
        full_env = {**self._env(str(env_dir), building=building), **(env or {})}
        base = _user_processes()
        if prlimit:
            argv = [prlimit, *self.limits.prlimit_args(timeout, nproc_base=base), "--", *argv]
        else:
            preexec = functools.partial(self.limits.setrlimits, timeout, nproc_base=base)
        return argv, host_cwd, full_env, preexec

    async def add_layer(self, layer: Layer, *, timeout: float) -> ExecResult:
        layers = [*self.layers, layer]
        env_dir, result = await self._ensure_env(layers, timeout=timeout)
        if env_dir is not None:
            self.env_dir = env_dir
            self.layers = layers
            await asyncio.to_thread(self._link_env)
        return result

    async def read_env_file(self, path: str) -> str:
        assert self.env_dir is not None
        return await asyncio.to_thread(resolve_inside(self.env_dir, path).read_text, encoding="utf-8")

    def _link_env(self) -> None:
        """Point the template's ``env_links`` (node_modules) at the current environment.

        Inside bubblewrap the environment is always at ``/env``; a plain
        subprocess sees the cache entry itself, which changes with each layer."""
        for name in self.template.env_links:
            link = self.workspace / normalize(name)
            target = Path(ENV_MOUNT if self.isolated else self.env_dir) / name
            if link.is_symlink() and os.readlink(link) == str(target):
                continue
            if link.is_symlink() or link.is_file():
                link.unlink()
            elif link.exists():
                shutil.rmtree(link)
            # A dangling link breaks tools that walk the project (node --test): link what exists.
            if (self.env_dir / name).exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(target)

    # --- environment cache ---------------------------------------------------
    def _key(self, layers: Sequence[Layer]) -> str:
        return layers_key(self.template, layers)

    async def _ensure_env(self, layers: list[Layer], *, timeout: float = BUILD_TIMEOUT) -> tuple[Path | None, ExecResult]:
        """The cached environment for ``layers``, built from its cached prefix when missing.

        Returns (None, result) when the last layer fails: that is data for the
        model. A failure of the template's own setup raises.
        """
        assert self.cache is not None
        key = self._key(layers)
        final = self.cache.path(key)
        if await asyncio.to_thread(final.exists):
            return final, ExecResult(0, stdout="(environment reused from cache)")
        prefix: Path | None = None
        if layers:
            prefix, result = await self._ensure_env(layers[:-1], timeout=timeout)
            if prefix is None:
                return None, result
        async with self.cache.locked(key):
            if await asyncio.to_thread(final.exists):  # a concurrent run built it while we waited
                return final, ExecResult(0, stdout="(environment reused from cache)")
            scratch = self.cache.scratch()
            try:
                if prefix is None:
                    await asyncio.to_thread(self._make_scratch, scratch)
                    await self._build_base(scratch)
                    result = ExecResult(0)
                else:
                    await asyncio.to_thread(copy_tree, prefix, scratch)
                    if not self.isolated:
                        await asyncio.to_thread(relocate, scratch, prefix, scratch)
                    result = await self._step(scratch, self.layer_command(layers[-1]), timeout, layers)
                    if not result.ok:
                        await asyncio.to_thread(shutil.rmtree, scratch, True)
                        return None, result
                if not self.isolated:  # point the scripts at the final path before anyone can see it
                    await asyncio.to_thread(relocate, scratch, scratch, final)
                await asyncio.to_thread(self.cache.publish, scratch, key, self.template.name, layers)
            except BaseException:
                await asyncio.to_thread(shutil.rmtree, scratch, True)
                raise
        return final, result

    async def _step(self, scratch: Path, command: str, timeout: float, layers: Sequence[Layer] = ()) -> ExecResult:
        layer_steps = [self.layer_command(layer) for layer in layers]
        return await self._run(
            scratch, command, timeout=timeout, network=self.spec.layer_network, building=True, layer_steps=layer_steps
        )

    def _make_scratch(self, scratch: Path) -> None:
        scratch.mkdir()
        owner = bwrap.owner_ids() if self.isolated else None
        if owner:
            os.chown(scratch, *owner)

    async def _build_base(self, scratch: Path) -> None:
        """The template's environment before any layer: create, setup commands, base packages."""
        # In a thread: it resolves the interpreter's links, a blocking call a server's loop refuses.
        create = await asyncio.to_thread(
            runtimes.create_command, self.template, Path(ENV_MOUNT if self.isolated else scratch)
        )
        steps: list[str | list[str]] = [create] if create else []
        steps += list(self.template.setup_commands)
        if self.template.base_packages:
            steps.append(self.template.install_command.format(packages=" ".join(self.template.base_packages)))
        for step in steps:
            result = await self._step(scratch, step, BUILD_TIMEOUT)
            if not result.ok:
                what = step if isinstance(step, str) else " ".join(step)
                raise SandboxStartupError(
                    f"could not build the {self.template.name!r} environment: {what!r} "
                    f"(exit {result.exit_code}):\n{result.output[-2000:]}"
                )
