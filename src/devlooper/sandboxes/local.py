"""The local sandbox: a per-run workspace and a cached environment on this machine.

Commands run as a new process group with stdin closed, a cleared environment
(host secrets never reach generated code), a wall-clock timeout that kills the
whole group, and output captured in constant memory.

Environments (a venv for the python runtime) are cached by template and
ordered layers under the user's cache directory. A new layer is built on a
copy of the cached prefix in a temporary directory and renamed into place, so
concurrent runs never see a half-built environment.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from platformdirs import user_cache_dir

from ..bounded import BoundedBuffer
from ..paths import resolve_inside
from ..state import Layer
from . import runtimes
from .base import ExecResult, Sandbox, SandboxSpec, SandboxStartupError, layers_key

OUTPUT_CAP = 1_000_000  # bytes kept per stream (head + tail)
GRACE = 5.0  # seconds to drain pipes after the process group is killed


def cache_root() -> Path:
    return Path(os.environ.get("DEVLOOPER_CACHE_DIR") or user_cache_dir("devlooper"))


async def run_process(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float, cap: int = OUTPUT_CAP
) -> ExecResult:
    """Run ``argv`` in its own process group; kill the group on timeout and on exit.

    The process is waited for with ``waitpid`` in a worker thread rather than
    asyncio's ``Process.wait``, which also waits for the pipes to close and so
    would hang on a background child that inherited them.
    """
    started = time.monotonic()
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out, err = BoundedBuffer(cap), BoundedBuffer(cap)
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()

    def wait() -> bool:
        try:
            proc.wait(timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        # Kill the whole group even after a normal exit: background children
        # (a stray `sleep &`) must not outlive the command or hold the pipes.
        _kill_group(proc.pid)
        proc.wait()
        for reader in readers:
            reader.join(GRACE)
        return timed_out

    try:
        timed_out = await asyncio.to_thread(wait)
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        raise
    return ExecResult(
        exit_code=124 if timed_out else proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        timed_out=timed_out,
        killed="timeout" if timed_out else None,
        truncated=bool(out.dropped or err.dropped),
        dropped=out.dropped + err.dropped,
        duration=time.monotonic() - started,
    )


def _pump(stream, buf: BoundedBuffer) -> None:
    with stream:
        while chunk := stream.read1(1 << 16):
            buf.write(chunk)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _relocate(env_dir: Path, old: Path) -> None:
    """Point a moved venv's scripts at their new home (shebangs hold absolute paths)."""
    old_prefix, new_prefix = str(old).encode(), str(env_dir).encode()
    for script in (env_dir / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(b"#!") and old_prefix in data[:4096]:
            script.write_bytes(data.replace(old_prefix, new_prefix))
    cfg = env_dir / "pyvenv.cfg"
    if cfg.exists():
        cfg.write_bytes(cfg.read_bytes().replace(old_prefix, new_prefix))


class LocalSandbox(Sandbox):
    name = "local"

    def __init__(self, spec: SandboxSpec) -> None:
        super().__init__(spec)
        self.root: Path | None = None
        self.workspace: Path | None = None
        self.env_dir: Path | None = None
        self.envs = cache_root() / "envs"

    # --- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"devlooper-{self.spec.run_id[:8]}-"))
        self.workspace = self.root / "workspace"
        for sub in ("workspace", "home", "tmp"):
            (self.root / sub).mkdir()
        self.envs.mkdir(parents=True, exist_ok=True)
        self.env_dir = await self._ensure_env(list(self.spec.layers))
        self.layers = list(self.spec.layers)

    async def close(self) -> None:
        if self.root is not None:
            await asyncio.to_thread(shutil.rmtree, self.root, True)
            self.root = None

    # --- files -------------------------------------------------------------
    async def write_file(self, path: str, content: str) -> None:
        target = resolve_inside(self.workspace, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(target.write_text, content, encoding="utf-8")

    async def read_file(self, path: str) -> str:
        target = resolve_inside(self.workspace, path)
        return await asyncio.to_thread(target.read_text, encoding="utf-8", errors="replace")

    async def delete_file(self, path: str) -> None:
        target = resolve_inside(self.workspace, path)
        target.unlink(missing_ok=True)

    # --- commands ------------------------------------------------------------
    def _env(self, env_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
        """A cleared environment: nothing of the host's leaks in (no API keys)."""
        env = {
            "PATH": ":".join([*runtimes.tool_path(self.template, env_dir), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(self.root / "home"),
            "TMPDIR": str(self.root / "tmp"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TERM": "dumb",
            "PAGER": "cat",
            "GIT_PAGER": "cat",
            "NO_COLOR": "1",
            "CI": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "PIP_PROGRESS_BAR": "off",
            "PIP_CACHE_DIR": str(cache_root() / "pip"),
        }
        env.update(runtimes.env_vars(self.template, env_dir))
        env.update(extra or {})
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
        return await self._exec_in(self.env_dir, command, timeout=timeout, cwd=cwd, env=env)

    async def _exec_in(
        self,
        env_dir: Path,
        command: str | Sequence[str],
        *,
        timeout: float,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult:
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        workdir = resolve_inside(self.workspace, cwd) if cwd else self.workspace
        return await run_process(argv, cwd=workdir, env=self._env(env_dir, env), timeout=timeout)

    async def add_layer(self, layer: Layer, *, timeout: float) -> ExecResult:
        layers = [*self.layers, layer]
        final = self.envs / layers_key(self.template, layers)
        if final.exists():
            result = ExecResult(0, stdout="(environment reused from cache)")
        else:
            scratch = self._scratch_dir()
            await asyncio.to_thread(shutil.copytree, self.env_dir, scratch, symlinks=True)
            await asyncio.to_thread(_relocate, scratch, self.env_dir)
            result = await self._exec_in(scratch, self.layer_command(layer), timeout=timeout)
            if not result.ok:
                await asyncio.to_thread(shutil.rmtree, scratch, True)
                return result
            await asyncio.to_thread(self._publish, scratch, final)
        self.env_dir = final
        self.layers = layers
        return result

    # --- environment cache ---------------------------------------------------
    def _scratch_dir(self) -> Path:
        return self.envs / f".build-{uuid.uuid4().hex[:12]}"

    def _publish(self, scratch: Path, final: Path) -> None:
        """Rename a finished environment into the cache; a concurrent twin may win."""
        try:
            scratch.rename(final)
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)
            return
        _relocate(final, scratch)

    async def _ensure_env(self, layers: list[Layer]) -> Path:
        final = self.envs / layers_key(self.template, layers)
        if final.exists():
            return final
        scratch = self._scratch_dir()
        try:
            await self._build_env(scratch, layers)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, scratch, True)
            raise
        await asyncio.to_thread(self._publish, scratch, final)
        return final

    async def _build_env(self, scratch: Path, layers: list[Layer]) -> None:
        create = runtimes.create_command(self.template, scratch)
        if create:
            self._check(await run_process(create, cwd=self.root, env=self._env(scratch), timeout=120), "create")
        else:
            scratch.mkdir(parents=True)
        steps = list(self.template.setup_commands)
        if self.template.base_packages:
            steps.append(self.template.install_command.format(packages=" ".join(self.template.base_packages)))
        steps += [self.layer_command(layer) for layer in layers]
        for step in steps:
            self._check(await self._exec_in(scratch, step, timeout=900), step)

    @staticmethod
    def _check(result: ExecResult, what: str) -> None:
        if not result.ok:
            raise SandboxStartupError(f"could not {what!r} (exit {result.exit_code}):\n{result.output[-2000:]}")
