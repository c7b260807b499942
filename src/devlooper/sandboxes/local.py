"""The local sandbox: a per-run workspace and a cached environment on this machine.

Commands are confined by an isolation strategy (``isolation``): bubblewrap by
default, with the smallest view of the host, the workspace at the template's
workdir, the environment at ``/env`` (read-only while tests run), a private
``/tmp``, no network for tests and a network of their own for build steps, a
cleared environment, no capabilities, and resource limits. ``none`` (only when
the user asks for it) runs a plain subprocess with the same limits and
environment. When bubblewrap cannot run, the sandbox refuses to start.

Everything a command could have written (the workspace, a built environment,
a results file) is hostile to the host: files are read and written here with
``workspace``'s helpers, which never follow a link and cap every read.

Environments are cached by content (``_key``): the template, the ordered
layers, the digests of the template's declared local packages, and for a
command layer the project files it ran against. Each prefix of the layers is
an entry of its own, so a later iteration or a later run with the same prefix
starts from it instead of reinstalling. Installs run against an empty scratch
workspace (they cannot see or change the project); a command layer sees the
project, and the changes it made to it are stored with its entry and made
again when the entry is reused, so a warm cache gives what a cold one gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import shlex
import stat
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..bounded import clip
from ..layers import Layer
from ..paths import UnsafePathError, normalize
from . import bwrap, runtimes, workspace
from .base import (
    UNATTENDED_ENV,
    ExecResult,
    ProjectEntry,
    Sandbox,
    SandboxError,
    SandboxSpec,
    SandboxStartupError,
    layers_key,
)
from .envcache import EnvCache, chown_tree, copy_tree, relocate, remove_tree
from .isolation import LocalSettings, Prepared, Step, default_cache_dir, isolation_for
from .limits import MB, Limits
from .process import run_process
from .resident import Resident, ResidentError, helper_argv, interpreter

if TYPE_CHECKING:
    from ..context import Context

BUILD_TIMEOUT = 900.0  # seconds for each step of the template's base environment
READ_CAP = 4_000_000  # bytes of one file read back from the workspace or the environment (results files too)
CHANGES_CAP = 8_000_000  # bytes of text a command layer's workspace changes may hold to be replayable
KEY_VERSION = "2"  # bumped when what a key means changes: old entries are never taken for new ones
SHARED_CACHES = ("pip", "npm")  # download caches: shared by installs, private to everything else
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"  # Debian's bundle of the system's trusted CAs
REUSED_OUTPUT = 8_000  # characters of a layer step's output kept with its entry, given again on reuse
LOCAL_PACKAGE_CAP = 50_000_000  # bytes of a declared local package hashed for the cache key
TOUCH_EVERY = 60.0  # seconds between two records of a use of the sandbox's environment


def cache_root() -> Path:
    return Path(default_cache_dir())


class LocalSandbox(Sandbox):
    name = "local"

    def __init__(
        self,
        spec: SandboxSpec,
        *,
        limits: Limits | None = None,
        isolation: str | None = None,
        settings: LocalSettings | None = None,
    ) -> None:
        super().__init__(spec)
        if settings is None and spec.settings:
            # As the run recorded them (a resume reproduces them), with the isolation it asks for now.
            recorded = LocalSettings.model_validate(spec.settings)
            settings = recorded.model_copy(update={"isolation": isolation or spec.isolation or recorded.isolation})
        settings = settings or LocalSettings.from_env(isolation or spec.isolation)
        if limits is not None:
            settings = settings.model_copy(update={"limits": limits})
        self.settings = settings
        self.limits = settings.limits
        self.strategy = isolation_for(settings.isolation)
        self.isolated = self.strategy.name == "bwrap"
        self.root: Path | None = None
        self.workspace: Path | None = None
        self.env_dir: Path | None = None
        self.env_key: str | None = None
        self.cache: EnvCache | None = None
        self._packages_digest = ""
        self._etc: Path | None = None  # the minimal /etc bubblewrap binds (``bwrap.minimal_etc``)
        self._declared: dict[str, str] = {}  # host path -> path inside, for declared local packages
        self._touched = float("-inf")  # when the environment's use was last recorded (``cache.touch``)
        self._own: set[str] = set()  # entries this sandbox built (usable even when not replayable)
        # Commands of a started bubblewrap sandbox run in one resident sandbox process
        # (``resident``): one more command is a fork, not a new set of namespaces.
        self._resident: Resident | None = None
        self._resident_lock = asyncio.Lock()
        self.resident_off: str | None = None if self.isolated else "not isolated by bubblewrap"
        self._warming: asyncio.Task | None = None

    @classmethod
    def check_config(cls, ctx: Context | None = None) -> None:
        """Refuse, before any model call, to run generated code unconfined unless asked to."""
        settings = LocalSettings.from_env(ctx.isolation if ctx else None)
        isolation_for(settings.isolation).check(network=ctx.layer_network if ctx else True)

    # --- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        # Blocking filesystem work runs in a thread: a server's event loop must not wait on it.
        await asyncio.to_thread(self._prepare)
        try:
            env_dir, result, _ = await self._ensure_env(list(self.spec.layers))
        except BaseException:
            await self.close()
            raise
        if env_dir is None:
            await self.close()
            raise SandboxStartupError(f"replaying the environment's layers failed:\n{result.output[-2000:]}")
        self.env_dir = env_dir
        self.env_key = self._key(self.spec.layers)
        self.layers = list(self.spec.layers)
        await asyncio.to_thread(self._link_env)
        await self._warm_in_background()  # while the run's first model calls are made

    async def resident_ready(self) -> bool:
        """Wait until the resident sandbox process started with the sandbox is up; whether
        it is (False: every command gets a bubblewrap of its own, ``resident_off`` says why)."""
        if self._warming is not None:
            await asyncio.gather(self._warming, return_exceptions=True)
        return self._resident is not None and self._resident.alive

    async def _warm_in_background(self) -> None:
        """Start the resident sandbox process for the current environment (restart it, after
        a new layer) in the background. Its lock is held until it is up: a command meanwhile
        gets a bubblewrap of its own rather than wait for a Python interpreter's start. Not
        when a command holds it: that command's process is the one the next command
        restarts."""
        if self.resident_off is not None or self._resident_lock.locked():
            return
        await self._resident_lock.acquire()  # free: taken at once, nothing runs in between
        self._warming = asyncio.create_task(self._warm_resident())

    async def _warm_resident(self) -> None:
        try:
            step = self._step_for("true", self.workspace, self.env_dir, writable=False, network=False, caches="none")
            await asyncio.to_thread(self._resident_for, step, None)
        finally:
            self._resident_lock.release()

    def _prepare(self) -> None:
        """Check the isolation, make the workspace and private /tmp, open the cache."""
        self.strategy.check(network=self.spec.layer_network)
        self.root = Path(tempfile.mkdtemp(prefix=f"devlooper-{self.spec.run_id[:8]}-"))
        self.root.chmod(0o755)
        self.workspace = self.root / "workspace"
        for sub in ("workspace", "tmp", "tmp/home", "private-cache", "private-cache/pip", "private-cache/npm"):
            (self.root / sub).mkdir()
        owner = self.strategy.owner()
        if owner:
            for sub in ("workspace", "tmp", "private-cache"):
                chown_tree(self.root / sub, *owner)
        cache_dir = Path(self.settings.cache_dir)
        self._etc = bwrap.minimal_etc(cache_dir) if self.isolated else None
        self.cache = EnvCache(cache_dir / "envs" / ("bwrap" if self.isolated else "plain"))
        self.cache.clean_stale()
        for name in SHARED_CACHES:
            path = cache_dir / name
            path.mkdir(parents=True, exist_ok=True)
            if owner and path.stat().st_uid != owner[0]:
                chown_tree(path, *owner)
        self._packages_digest = local_packages_digest(self.template.local_packages)
        # Declared local packages stay visible after their install: cargo builds a path
        # dependency from its source at every test run. One that does not exist is not
        # bound: the install that names it fails, as data.
        self._declared = {
            os.path.realpath(p): p for p in self.template.local_packages.values() if os.path.exists(p)
        }

    async def close(self) -> None:
        warming, self._warming = self._warming, None
        try:
            if warming is not None:
                await asyncio.gather(warming, return_exceptions=True)
        finally:
            resident, self._resident = self._resident, None
            root, self.root = self.root, None
            # One worker thread does all of it: a stopped run is cancelled more than once on
            # its way out, and a cancel cannot cut short a thread that has started.
            await asyncio.to_thread(_release, resident, root)

    # --- files -------------------------------------------------------------
    async def write_file(self, path: str, content: str) -> None:
        await asyncio.to_thread(self._write, normalize(path), content.encode("utf-8"))

    def _write(self, rel: str, data: bytes) -> None:
        """Write into the workspace through no link the sandbox left: a link (or a file)
        where a directory of the path must be is refused with ``UnsafePathError``; a link
        or special file at the file's own place is replaced, never followed."""
        try:
            workspace.write_nofollow(self.workspace, rel, data)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise UnsafePathError(f"path goes through a link or a file in the workspace: {rel!r}") from None
        owner = self.strategy.owner()
        if owner:  # the sandbox's user must be able to change what we wrote
            parts = rel.split("/")
            for i in range(1, len(parts) + 1):
                os.chown(self.workspace / "/".join(parts[:i]), *owner, follow_symlinks=False)

    async def read_file(self, path: str) -> str:
        """A workspace file: ``FileNotFoundError`` when missing, ``OSError`` when it is a link
        or not a regular file, ``workspace.TooLarge`` past ``READ_CAP`` bytes."""
        data = await asyncio.to_thread(workspace.read_capped, self.workspace, normalize(path), READ_CAP)
        return data.decode("utf-8", errors="replace")

    async def delete_file(self, path: str) -> None:
        await asyncio.to_thread(self._delete, normalize(path))

    def _delete(self, rel: str) -> None:
        try:
            workspace.remove_nofollow(self.workspace, rel)
        except IsADirectoryError:  # a command left a directory where a file was: its contents go too
            remove_tree(self.workspace / rel)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            # A link on the way: no file of the workspace is there to delete (and the link
            # may be the template's own, such as node_modules).

    async def read_env_file(self, path: str) -> str:
        assert self.env_dir is not None
        data = await asyncio.to_thread(workspace.read_capped, self.env_dir, normalize(path), READ_CAP)
        return data.decode("utf-8", errors="replace")

    def _link_env(self) -> None:
        """Point the template's ``env_links`` (node_modules) at the current environment.

        Inside bubblewrap the environment is always at ``/env``; a plain
        subprocess sees the cache entry itself, which changes with each layer.
        Whatever the sandbox left at the link's place is removed, never followed."""
        for name in self.template.env_links:
            rel = normalize(name)
            target = str(Path("/env" if self.isolated else self.env_dir) / rel)
            link = self.workspace / rel
            try:
                st = os.lstat(link)
                if stat.S_ISLNK(st.st_mode) and os.readlink(link) == target:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    remove_tree(link)
                else:
                    workspace.remove_nofollow(self.workspace, rel)
            except FileNotFoundError:
                pass
            # A dangling link breaks tools that walk the project (node --test): link what exists.
            if os.path.lexists(self.env_dir / rel):
                fd, last = workspace.parent_fd(self.workspace, rel, create=True)
                try:
                    os.symlink(target, last, dir_fd=fd)
                finally:
                    os.close(fd)

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
    def _env(self, env_dir: str, tmp: str, caches: dict[str, str], *, building: bool) -> dict[str, str]:
        """A cleared environment: nothing of the host's leaks in (no API keys)."""
        env = {
            "PATH": ":".join([*runtimes.tool_path(self.template, Path(env_dir)), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": f"{tmp}/home",
            "TMPDIR": tmp,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "LESS": "FRX",
            **UNATTENDED_ENV,
            "DEVLOOPER_ENV": env_dir,  # the cached environment (read-only while tests run)
            "PIP_CACHE_DIR": caches["pip"],
            "npm_config_cache": caches["npm"],
        }
        if os.path.isfile(SYSTEM_CA):
            # pip trusts its own bundle by default; the system's may also hold a proxy's CA
            # (the host's /etc/pip.conf, which would say so, is not part of the sandbox's /etc).
            env["PIP_CERT"] = SYSTEM_CA
        if not building:  # no network while tests run: fail at once instead of retrying
            env["PIP_RETRIES"] = "0"
            env["npm_config_fetch_retries"] = "0"  # else npm backs off for over a minute
        env.update(runtimes.env_vars(self.template, Path(env_dir), tmp))
        return env

    async def exec(
        self,
        command: str | Sequence[str],
        *,
        timeout: float,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        network: bool = False,
    ) -> ExecResult:
        step = self._step_for(
            command, self.workspace, self.env_dir, cwd=cwd, writable=False, network=network, caches="none"
        )
        # A run that keeps testing keeps its environment from being pruned (least recently
        # used first): once a minute is recent enough, and spares most commands a thread.
        if self.env_key and time.monotonic() - self._touched > TOUCH_EVERY:
            self._touched = time.monotonic()
            await asyncio.to_thread(self.cache.touch, self.env_key)
        # One command at a time goes to the resident sandbox; one that comes while it is
        # busy (commands run concurrently) or still starting (its lock is held from the
        # sandbox's start until it is ready) gets a bubblewrap of its own, as does a command
        # that needs a network. Waiting for it would put a Python interpreter's start on the
        # path of the first command, which a bubblewrap of its own does not have.
        if not network and self.resident_off is None and not self._resident_lock.locked():
            async with self._resident_lock:
                resident, full_env, inside = await asyncio.to_thread(self._resident_for, step, env)
                if resident is not None:
                    return await self._run_resident(resident, step, full_env, inside, timeout)
        return await self._run(step, timeout=timeout, env=env, building=False)

    async def list_environment(self, command: str, *, timeout: float) -> ExecResult:
        """A listing of the environment, run once per cached environment: after an install
        on a warm cache (and at the end of a run) it is read back instead of starting a
        Python in the sandbox again (a tenth of a second or more)."""
        key = self.env_key
        if key is None or self.cache is None:
            return await self.exec(command, timeout=timeout)
        kept = await asyncio.to_thread(self.cache.kept_listing, key, command)
        if kept is not None:
            return ExecResult(0, stdout=kept, reused=True)
        result = await self.exec(command, timeout=timeout)
        if result.ok and not result.truncated and not result.dropped:
            await asyncio.to_thread(self.cache.keep_listing, key, command, result.stdout)
        return result

    def _resident_for(self, step: Step, env: dict[str, str] | None) -> tuple[Resident | None, dict[str, str], str]:
        """The resident sandbox process for ``step``'s view of the host (started, or
        restarted when the view changed: a new layer's environment), the command's
        environment and its directory inside. None when it cannot start here: every
        command then runs in a bubblewrap of its own, as before."""
        full_env = self._full_env(step, env, building=False)
        workdir = self.template.workdir
        inside = workdir + ("/" + step.cwd if step.cwd else "")
        python = interpreter()
        if python is None:
            self.resident_off = "no base Python interpreter the sandbox can see"
            return None, full_env, inside
        argv = self.strategy.resident(step, full_env, workdir, helper_argv(python))
        if self._resident is not None and (self._resident.argv != argv or not self._resident.alive):
            self._resident.close()
            self._resident = None
        if self._resident is None:
            try:
                self._resident = Resident(argv, cwd=step.tmp.parent)
            except (ResidentError, OSError) as exc:
                self.resident_off = str(exc)
                return None, full_env, inside
        return self._resident, full_env, inside

    async def _run_resident(
        self, resident: Resident, step: Step, full_env: dict[str, str], inside: str, timeout: float
    ) -> ExecResult:
        try:
            return await asyncio.to_thread(
                resident.run, step.argv, cwd=inside, env=full_env, timeout=timeout,
                rlimits=self.limits.rlimits(timeout), memory_mb=self.limits.memory_mb,
            )
        except asyncio.CancelledError:
            resident.kill()  # the command and all it started die now; the next command starts afresh
            raise

    def _step_for(
        self,
        command: str | Sequence[str],
        ws: Path,
        env_dir: Path,
        *,
        cwd: str | None = None,
        writable: bool,
        network: bool,
        caches: Literal["shared", "private", "none"],
    ) -> Step:
        """``caches``: the download caches a build step gets (installs share them, a command
        layer has private ones); tests get none (``_full_env`` points them into /tmp), and
        no mount they do not use: each costs the sandbox's start a bind."""
        caches_root = Path(self.settings.cache_dir) if caches == "shared" else self.root / "private-cache"
        return Step(
            argv=["bash", "-c", command] if isinstance(command, str) else list(command),
            workspace=ws,
            cwd=normalize(cwd) if cwd else None,
            tmp=self.root / "tmp",
            env_dir=env_dir,
            env_writable=writable,
            network=network,
            caches={} if caches == "none" else {name: caches_root / name for name in SHARED_CACHES},
            read_only=dict(self._declared),
            etc=self._etc,
        )

    async def _run(
        self, step: Step, *, timeout: float, env: dict[str, str] | None = None, building: bool
    ) -> ExecResult:
        # Everything blocking (PATH look-ups, files) happens in a thread: a server's loop must not wait.
        full_env, prepared = await asyncio.to_thread(self._prepare_step, step, env, timeout, building)
        return await run_process(
            prepared.argv, cwd=prepared.cwd, env=full_env, timeout=timeout, memory_mb=self.limits.memory_mb,
            preexec=prepared.preexec, attach=prepared.attach,
        )

    def _prepare_step(
        self, step: Step, env: dict[str, str] | None, timeout: float, building: bool
    ) -> tuple[dict[str, str], Prepared]:
        full_env = self._full_env(step, env, building=building)
        return full_env, self.strategy.prepare(step, full_env, self.limits, timeout, self.template.workdir)

    def _full_env(self, step: Step, env: dict[str, str] | None, *, building: bool) -> dict[str, str]:
        seen_env, seen_tmp, seen_caches = self.strategy.seen(step)
        if not building:
            # Tests get no shared download cache: an offline install must fail, not be served from it.
            seen_caches = {"pip": f"{seen_tmp}/pip-cache", "npm": f"{seen_tmp}/npm-cache"}
        return {**self._env(seen_env, seen_tmp, seen_caches, building=building), **(env or {})}

    def layer_command(self, layer: Layer) -> str:
        """An install's packages, with the template's declared local packages named by
        their host path in the form the runtime's install command takes."""
        if layer["kind"] != "install" or not self.template.local_packages:
            return super().layer_command(layer)
        words = []
        for word in shlex.split(layer["spec"]):
            path = self.template.local_packages.get(word)
            if path is None:
                words.append(shlex.quote(word))
            elif self.template.runtime == "rust":
                words += ["--path", shlex.quote(path)]
            else:
                words.append(shlex.quote(path))
        return self.template.install_command.format(packages=" ".join(words))

    async def add_layer(self, layer: Layer, *, timeout: float) -> ExecResult:
        layers = [*self.layers, layer]
        env_dir, result, reused = await self._ensure_env(layers, timeout=timeout)
        if env_dir is not None:
            if reused and layer["kind"] == "command":
                await asyncio.to_thread(self._replay_changes, self._key(layers))
            self.env_dir = env_dir
            self.env_key = self._key(layers)
            self.layers = layers
            await asyncio.to_thread(self._link_env)
            # The next test run would otherwise wait for the restart in the new environment;
            # in a run, the plan's fixes (model calls) come between an install and the test.
            await self._warm_in_background()
        return result

    # --- environment cache ---------------------------------------------------
    def _key(self, layers: Sequence[Layer]) -> str:
        """The content an environment was built from: the template and layers, the declared
        local packages' contents, and the project files each command layer saw."""
        h = hashlib.sha256(f"{KEY_VERSION}\0{layers_key(self.template, layers)}\0{self._packages_digest}".encode())
        for layer in layers:
            if layer["kind"] == "command":
                h.update(f"\0{layer.get('workspace', '')}".encode())
        return h.hexdigest()[:24]

    def _usable(self, key: str) -> bool:
        assert self.cache is not None
        if not self.cache.ready(key):
            return False
        return key in self._own or self.cache.info(key).get("changes") is not False

    async def _ensure_env(
        self, layers: list[Layer], *, timeout: float = BUILD_TIMEOUT
    ) -> tuple[Path | None, ExecResult, bool]:
        """The cached environment for ``layers``, built from its cached prefix when missing,
        and whether it was reused.

        Returns (None, result, False) when the last layer fails: that is data for the
        model. A failure of the template's own setup raises.
        """
        assert self.cache is not None
        key = self._key(layers)
        final = self.cache.path(key)
        reused = await asyncio.to_thread(self._reuse, key)  # one trip to a thread: it is on every start's path
        if reused is not None:
            return final, reused, True
        prefix: Path | None = None
        if layers:
            prefix, result, _ = await self._ensure_env(layers[:-1], timeout=timeout)
            if prefix is None:
                return None, result, False
        async with self.cache.locked(key):
            if await asyncio.to_thread(self._usable, key):  # a concurrent run built it while we waited
                await asyncio.to_thread(self.cache.touch, key)
                return final, await asyncio.to_thread(self._reused, key), True
            scratch = self.cache.scratch()
            changes = None
            try:
                if prefix is None:
                    await asyncio.to_thread(self._make_scratch, scratch)
                    await self._build_base(scratch)
                    result = ExecResult(0)
                else:
                    await asyncio.to_thread(copy_tree, prefix, scratch)
                    if self.strategy.relocates:
                        await asyncio.to_thread(relocate, scratch, prefix, scratch)
                    result, changes = await self._layer_step(scratch, layers[-1], timeout)
                    if not result.ok:
                        await asyncio.to_thread(remove_tree, scratch)
                        return None, result, False
                if self.strategy.relocates:  # point the scripts at the final path before anyone can see it
                    await asyncio.to_thread(relocate, scratch, scratch, final)
                output = {"stdout": clip(result.stdout, REUSED_OUTPUT)[0], "stderr": clip(result.stderr, REUSED_OUTPUT)[0]}
                await asyncio.to_thread(
                    self.cache.publish, scratch, key, self.template.name, layers, changes, output
                )
            except BaseException:
                await asyncio.to_thread(remove_tree, scratch)
                raise
        self._own.add(key)
        keep = {key, *([self.env_key] if self.env_key else [])}
        await asyncio.to_thread(self.cache.prune, self.settings.cache_max_mb * MB, keep)
        return final, result, False

    def _reuse(self, key: str) -> ExecResult | None:
        """The result of the cached step of ``key``, recording the use; None when not usable."""
        if not self._usable(key):
            return None
        self.cache.touch(key)
        self._touched = time.monotonic()
        return self._reused(key)

    def _reused(self, key: str) -> ExecResult:
        """The result of a step whose environment is reused: what the step printed when it
        ran, so the model (and the report) read the same on a warm cache as on a cold one."""
        output = self.cache.info(key).get("output") if self.cache else None
        if not isinstance(output, dict):
            return ExecResult(0, reused=True)
        return ExecResult(0, stdout=str(output.get("stdout", "")), stderr=str(output.get("stderr", "")), reused=True)

    async def _layer_step(self, scratch: Path, layer: Layer, timeout: float) -> tuple[ExecResult, dict | bool | None]:
        """Run one layer on ``scratch``: an install against an empty workspace with the shared
        download caches, a command against the project with private ones (and its changes)."""
        command = self.layer_command(layer)
        if layer["kind"] == "install":
            return await self._build_step(scratch, command, timeout), None
        before = await asyncio.to_thread(self._snapshot)
        step = self._step_for(
            command, self.workspace, scratch, writable=True, network=self.spec.layer_network, caches="private"
        )
        result = await self._run(step, timeout=timeout, building=True)
        after = await asyncio.to_thread(self._snapshot)
        return result, _changes(before, after)

    async def _build_step(self, scratch: Path, command: str | list[str], timeout: float) -> ExecResult:
        """A build step that cannot see the project: its workspace is an empty scratch
        directory; it shares the download caches."""
        empty = await asyncio.to_thread(self._empty_workspace)
        try:
            step = self._step_for(
                command, empty, scratch, writable=True, network=self.spec.layer_network, caches="shared"
            )
            return await self._run(step, timeout=timeout, building=True)
        finally:
            await asyncio.to_thread(remove_tree, empty)

    def _empty_workspace(self) -> Path:
        empty = Path(tempfile.mkdtemp(prefix="build-ws-", dir=self.root))
        empty.chmod(0o755)
        owner = self.strategy.owner()
        if owner:
            os.chown(empty, *owner)
        return empty

    def _snapshot(self) -> dict[str, str | None]:
        """The workspace's project files as text (None: present, but not text within the cap)."""
        found: dict[str, str | None] = {}
        for entry in workspace.scan(self.workspace, self.template.not_project()):
            text = None
            if entry.kind == "file":
                with contextlib.suppress(OSError, workspace.TooLarge, UnicodeDecodeError):
                    text = workspace.read_capped(self.workspace, entry.path).decode("utf-8")
            found[entry.path] = text
        return found

    def _replay_changes(self, key: str) -> None:
        """Make a reused command layer's workspace changes again."""
        assert self.cache is not None
        changes = self.cache.info(key).get("changes") or {}
        for path in changes.get("deleted", []):
            with contextlib.suppress(OSError, ValueError):
                workspace.remove_nofollow(self.workspace, normalize(path))
        for path, text in (changes.get("written") or {}).items():
            self._write(normalize(path), text.encode("utf-8"))

    def _make_scratch(self, scratch: Path) -> None:
        scratch.mkdir()
        owner = self.strategy.owner()
        if owner:
            os.chown(scratch, *owner)

    async def _build_base(self, scratch: Path) -> None:
        """The template's environment before any layer: create, setup commands, base packages."""
        create = await asyncio.to_thread(runtimes.create_command, self.template, Path("/env" if self.isolated else scratch))
        steps: list[str | list[str]] = [create] if create else []
        steps += list(self.template.setup_commands)
        if self.template.base_packages:
            steps.append(self.template.install_command.format(packages=" ".join(self.template.base_packages)))
        for step in steps:
            result = await self._build_step(scratch, step, BUILD_TIMEOUT)
            if not result.ok:
                what = step if isinstance(step, str) else " ".join(step)
                raise SandboxStartupError(
                    f"could not build the {self.template.name!r} environment: {what!r} "
                    f"(exit {result.exit_code}):\n{result.output[-2000:]}"
                )


def _changes(before: dict[str, str | None], after: dict[str, str | None]) -> dict | bool:
    """What a command did to the project: files written (text) and deleted; False when that
    cannot be stored (a binary or huge file written, or more than ``CHANGES_CAP`` of text),
    so that the entry is never reused for another run."""
    written = {p: t for p, t in after.items() if before.get(p, "\0") != t}
    if any(t is None for t in written.values()) or sum(len(t) for t in written.values()) > CHANGES_CAP:
        return False
    return {"written": written, "deleted": sorted(p for p in before if p not in after)}


def _release(resident, root: Path | None) -> None:
    """Stop the resident process and remove the sandbox's directories."""
    if resident is not None:
        resident.close()
    if root is not None:
        remove_tree(root)


def local_packages_digest(packages: dict[str, str]) -> str:
    """A digest of the contents of the template's declared local packages, archives or
    directories (read without following links; build outputs such as ``target`` and
    ``node_modules`` left out)."""
    h = hashlib.sha256()
    budget = LOCAL_PACKAGE_CAP
    for name in sorted(packages):
        root = Path(packages[name])
        h.update(f"\0{name}\0{root}".encode())
        if os.path.isfile(root) and not os.path.islink(root):  # an archive (a wheel, a .tgz)
            with contextlib.suppress(OSError, workspace.TooLarge):
                h.update(hashlib.sha256(workspace.read_capped(root.parent, root.name, LOCAL_PACKAGE_CAP)).digest())
            continue
        for entry in workspace.scan(root, ("target", "node_modules", ".git", "__pycache__", "build", "*.egg-info")):
            h.update(f"\0{entry.path}\0{entry.kind}".encode())
            if entry.kind == "file" and entry.size <= budget:
                budget -= entry.size
                with contextlib.suppress(OSError, workspace.TooLarge):
                    h.update(hashlib.sha256(workspace.read_capped(root, entry.path, entry.size)).digest())
            elif entry.kind == "link":
                with contextlib.suppress(OSError):
                    h.update(os.readlink(root / entry.path).encode())
    return h.hexdigest()[:24] if packages else ""


__all__ = ["LocalSandbox", "LocalSettings", "cache_root"]
