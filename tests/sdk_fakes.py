"""Fakes of the E2B and Modal SDKs at the boundary devlooper uses.

Every fake call is first bound to the signature of the *installed* SDK's
method (``inspect.signature(real).bind``) and, for Modal, the real method must
offer ``.aio``; so an adapter call that the real SDK would reject fails here
too, and the fakes cannot drift from the SDKs. Commands run for real on this
machine, in a temporary directory that stands for the remote filesystem
(absolute paths the adapters use are mapped into it). Exceptions are the
SDKs' own classes.

The fakes enforce what a real account does, so each way a run breaks there
breaks here too: Modal refuses to build an image without Python; E2B starts a
sandbox only from a template that exists (``base``, one built with the
template builder, or one the test declares as the user's own) and gives each
user its own HOME (what root fetched into its home, the tests as ``user`` do
not see); sandboxes of both expire when their lifetime on ``CLOCK`` ends, and
a test can make the next request fail (``FAULTS``) as the service would.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import shutil
import subprocess
import tempfile
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import e2b
import modal
import modal.container_process
import modal.sandbox.sandbox

from devlooper.sandboxes.runtimes import _npm_trust
from e2b.sandbox_async.commands.command_handle import AsyncCommandHandle

CALLS: list[tuple[str, tuple, dict]] = []  # every SDK call the adapters made, in order


def check_call(real: Any, name: str, obj: Any, args: tuple, kwargs: dict, *, aio: bool) -> None:
    """Raise TypeError if the installed SDK would not accept this call."""
    if aio and not hasattr(real, "aio"):
        raise TypeError(f"{name} has no .aio in the installed SDK")
    sig = inspect.signature(real)
    params = list(sig.parameters)
    bound_args = (obj, *args) if params and params[0] == "self" else args
    try:
        bound = sig.bind(*bound_args, **kwargs)
        for param in sig.parameters.values():
            # **opts: Unpack[SomeTypedDict] accepts only that dict's keys.
            if param.kind is param.VAR_KEYWORD and typing.get_origin(param.annotation) is typing.Unpack:
                allowed = typing.get_args(param.annotation)[0].__annotations__
                unknown = set(bound.arguments.get(param.name, {})) - set(allowed)
                if unknown:
                    raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
    except TypeError as exc:
        raise TypeError(f"{name}{args!r}{kwargs!r} does not match the installed SDK {sig}: {exc}") from None
    CALLS.append((name, args, kwargs))


class sdk_method:
    """A fake method checked against ``real``; call it directly or through ``.aio``."""

    def __init__(self, real: Any, *, aio: bool = False) -> None:
        self.real, self.aio = real, aio

    def __call__(self, impl: Callable) -> sdk_method:
        self.impl = impl
        self.name = impl.__qualname__
        return self

    def __get__(self, obj: Any, owner: type) -> Any:
        method = self
        target = obj if obj is not None else owner

        class Bound:
            def __call__(self, *args: Any, **kwargs: Any) -> Any:
                check_call(method.real, method.name, obj, args, kwargs, aio=False)
                return method.impl(target, *args, **kwargs)

            async def aio(self, *args: Any, **kwargs: Any) -> Any:
                check_call(method.real, method.name, obj, args, kwargs, aio=method.aio)
                result = method.impl(target, *args, **kwargs)
                return await result if inspect.isawaitable(result) else result

        return Bound()


class FakeClock:
    """The providers' time: lifetimes end on it. Each command advances it by ``tick``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.tick = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


CLOCK = FakeClock()
# What the next SDK requests do, in order: None passes, an exception is raised (a revoked
# key, a network fault). [None] * 5 + [exc] fails the sixth request.
FAULTS: list[BaseException | None] = []


def fault() -> None:
    if FAULTS:
        exc = FAULTS.pop(0)
        if exc is not None:
            raise exc


def has_python(image: str) -> bool:
    return image.split("/")[-1].startswith("python:") or image.split("/")[-1] == "python"


def image_env(image: str) -> dict[str, str]:
    """The ENV a registry image sets that matters here: the rust image's toolchain home
    (stood in for by this machine's rustup)."""
    if image.split("/")[-1].startswith("rust:"):
        home = os.environ.get("RUSTUP_HOME") or os.path.expanduser("~/.rustup")
        return {"RUSTUP_HOME": home}
    return {}


# Package downloads shared by every fake machine (the providers fetch from near mirrors;
# here a fresh HOME per machine would fetch the react template's harness again each time).
DOWNLOADS = Path(tempfile.gettempdir()) / "devlooper-fake-downloads"
# The provider's machines reach the registries directly; this one may need its own npm
# config and CAs (a proxy), as the local backend does.
DOWNLOAD_ENV = {
    "npm_config_cache": str(DOWNLOADS / "npm"),
    "PIP_CACHE_DIR": str(DOWNLOADS / "pip"),
    **_npm_trust(),
}


class FakeMachine:
    """A remote filesystem in a temporary directory, and commands run in it."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fake-remote-"))
        self.alive = True
        self.env = env or {}  # the image's ENV
        self.procs: set[asyncio.subprocess.Process] = set()

    def host(self, path: str) -> Path:
        assert path.startswith("/"), path
        return self.root / path.lstrip("/")

    def translate(self, command: str) -> str:
        # The adapters' own absolute paths, mapped into the fake filesystem.
        for absolute in ("/workspace", "/etc/devlooper-env", "/opt/devlooper"):
            command = command.replace(absolute, str(self.root) + absolute)
        return re.sub(r"chown (-R )?user: ", "true ", command)

    def home(self, user: str | None) -> str:
        home = self.root / ("root" if user in (None, "root") else f"home/{user}")
        home.mkdir(parents=True, exist_ok=True)
        return str(home)

    async def start(self, command: str, cwd: str, env: dict | None, user: str | None = None):
        (self.root / "etc").mkdir(exist_ok=True)
        workdir = self.host(cwd)
        workdir.mkdir(parents=True, exist_ok=True)
        variables = {"PATH": os.environ["PATH"], "HOME": self.home(user), **DOWNLOAD_ENV, **self.env}
        variables.update({k: self.translate(v) for k, v in (env or {}).items()})
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", self.translate(command), cwd=workdir, env=variables,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
        self.procs.add(proc)
        return proc

    def kill(self, proc) -> None:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass

    async def run(self, command: str, cwd: str, env: dict | None, timeout: float | None, user: str | None = None):
        proc = await self.start(command, cwd, env, user)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            self.kill(proc)
            await proc.wait()
            return None, b"", b""
        return proc.returncode, out, err

    def destroy(self) -> None:
        self.alive = False
        for proc in self.procs:
            if proc.returncode is None:
                self.kill(proc)
        shutil.rmtree(self.root, ignore_errors=True)


# --- E2B -----------------------------------------------------------------

class FakeHandle:
    """A command started in the background: its output goes to the callbacks as it ends."""

    def __init__(self, sandbox: FakeAsyncSandbox, proc, on_stdout, on_stderr) -> None:
        self.sandbox, self.proc, self.killed = sandbox, proc, False
        self.task = asyncio.ensure_future(self._collect(on_stdout, on_stderr))

    async def _collect(self, on_stdout, on_stderr):
        out, err = await self.proc.communicate()
        for data, callback in ((out, on_stdout), (err, on_stderr)):
            text = data.decode(errors="replace")
            if callback and text:
                for line in text.splitlines(keepends=True):
                    callback(line)
        return self.proc.returncode

    @sdk_method(AsyncCommandHandle.wait)
    async def wait(self):
        code = await asyncio.shield(self.task)
        self.sandbox.check()
        if code != 0:
            raise e2b.CommandExitException(stderr="", stdout="", exit_code=code, error=None)
        return types.SimpleNamespace(exit_code=0, stdout="", stderr="", error=None)

    @sdk_method(AsyncCommandHandle.kill)
    async def kill(self):
        self.killed = True
        self.sandbox.machine.kill(self.proc)
        await self.proc.wait()
        return True


class FakeE2BCommands:
    def __init__(self, sandbox: FakeAsyncSandbox) -> None:
        self.sandbox = sandbox
        self.handles: list[FakeHandle] = []

    @sdk_method(e2b.sandbox_async.commands.command.Commands.run)
    async def run(self, cmd, background=None, envs=None, user=None, cwd=None, on_stdout=None, on_stderr=None,
                  stdin=None, timeout=60, request_timeout=None, *, retain_output=True):
        self.sandbox.check()
        CLOCK.advance(CLOCK.tick)
        proc = await self.sandbox.machine.start(cmd, cwd or "/", envs, user or "user")
        handle = FakeHandle(self.sandbox, proc, on_stdout, on_stderr)
        self.handles.append(handle)
        if background:
            return handle
        return await handle.wait()


class FakeE2BFiles:
    def __init__(self, sandbox: FakeAsyncSandbox) -> None:
        self.sandbox = sandbox
        self.machine = sandbox.machine

    @sdk_method(e2b.sandbox_async.filesystem.filesystem.Filesystem.write)
    async def write(self, path, data, user=None, request_timeout=None, gzip=False, use_octet_stream=None, metadata=None):
        self.sandbox.check()
        target = self.machine.host(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data)

    @sdk_method(e2b.sandbox_async.filesystem.filesystem.Filesystem.read)
    async def read(self, path, format="text", user=None, request_timeout=None, gzip=False, stream_idle_timeout=None):
        self.sandbox.check()
        target = self.machine.host(path)
        if not target.exists():
            raise e2b.FileNotFoundException(f"file {path} not found")
        return bytearray(target.read_bytes()) if format == "bytes" else target.read_text()

    @sdk_method(e2b.sandbox_async.filesystem.filesystem.Filesystem.remove)
    async def remove(self, path, user=None, request_timeout=None):
        self.sandbox.check()
        target = self.machine.host(path)
        if not target.exists():
            raise e2b.FileNotFoundException(f"file {path} not found")
        target.unlink()


class FakeAsyncTemplate(e2b.AsyncTemplate):
    """The real builder (``from_image``, ``run_cmd``, ...); building and lookup are faked:
    a build runs the template's commands in a fresh machine and fails as E2B's would."""

    built: dict[str, FakeAsyncTemplate] = {}
    builds: list[str] = []

    @sdk_method(e2b.AsyncTemplate.exists)
    async def exists(cls, name, **opts):
        fault()
        return name in cls.built

    @sdk_method(e2b.AsyncTemplate.build)
    async def build(cls, template, name=None, *, alias=None, tags=None, cpu_count=None, memory_mb=None, **kw):
        fault()
        base = template._template
        machine = FakeMachine(image_env(base._base_image))
        try:
            await bake(machine, base)
        finally:
            machine.destroy()
        cls.built[name] = base
        cls.builds.append(name)
        return types.SimpleNamespace(template_id=name, build_id="b-fake", name=name)


async def bake(machine: FakeMachine, template) -> None:
    """Run a built template's RUN instructions, each as its user: what a sandbox from it holds."""
    user, env = "root", {}  # ENV holds during the build only (as E2B documents for set_envs)
    for step in template._instructions:
        kind, args = step["type"].value, step["args"]
        if kind == "USER":
            user = args[0]
        elif kind == "ENV":
            env.update(zip(args[::2], args[1::2]))
        elif kind == "RUN":
            code, out, err = await machine.run(args[0], "/", env, 900, args[1] if len(args) > 1 else user)
            if code != 0:
                raise e2b.BuildException(f"build step failed: {args[0]!r}\n{err.decode()}")


class FakeAsyncSandbox:
    created: list[FakeAsyncSandbox] = []
    by_id: dict[str, FakeAsyncSandbox] = {}
    user_templates: dict[str, str] = {}  # a user's own templates by name -> contents of /etc/devlooper-env
    max_lifetime: float | None = None  # an account's cap on a sandbox's lifetime

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.sandbox_id = f"sbx-{len(self.created)}"
        template = options["template"]
        built = FakeAsyncTemplate.built.get(template)
        self.machine = FakeMachine(image_env(built._base_image) if built else {})
        self.template = built
        if template in self.user_templates:
            (self.machine.root / "etc").mkdir()
            (self.machine.root / "etc" / "devlooper-env").write_text(self.user_templates[template])
        self.commands = FakeE2BCommands(self)
        self.files = FakeE2BFiles(self)
        self.deadline = 0.0
        self.lifetime(options.get("timeout") or 300)
        self.timeouts: list[int] = []

    def lifetime(self, seconds: float) -> None:
        cap = self.max_lifetime if self.max_lifetime is not None else 86_400
        self.deadline = CLOCK.now + min(seconds, cap)

    def expired(self) -> bool:
        if self.machine.alive and CLOCK.now > self.deadline:
            self.machine.destroy()  # E2B ends it at the end of its lifetime
        return not self.machine.alive

    def check(self) -> None:
        fault()
        if self.expired():
            raise e2b.SandboxNotRunningException(f"sandbox {self.sandbox_id} is not running anymore")

    @sdk_method(e2b.AsyncSandbox.create)
    async def create(cls, template=None, timeout=None, **options):
        fault()
        name = template or "base"
        if name != "base" and name not in FakeAsyncTemplate.built and name not in cls.user_templates:
            raise e2b.NotFoundException(f"404: template '{name}' not found")
        sbx = cls(template=name, timeout=timeout, **options)
        if sbx.template is not None:
            await bake(sbx.machine, sbx.template)
        cls.created.append(sbx)
        cls.by_id[sbx.sandbox_id] = sbx
        return sbx

    @sdk_method(e2b.AsyncSandbox._cls_connect_sandbox)
    async def connect(cls, sandbox_id, timeout=None, logger=None, **opts):
        fault()
        sbx = cls.by_id.get(sandbox_id)
        if sbx is None or sbx.expired():
            raise e2b.SandboxNotFoundException(f"sandbox {sandbox_id} not found")
        if timeout and CLOCK.now + timeout > sbx.deadline:  # only ever longer
            sbx.lifetime(timeout)
        return sbx

    @sdk_method(e2b.AsyncSandbox.set_timeout)
    async def set_timeout(self, timeout, **opts):
        fault()
        if self.expired():
            raise e2b.SandboxNotFoundException(f"sandbox {self.sandbox_id} not found")
        self.timeouts.append(timeout)
        self.lifetime(timeout)

    @sdk_method(e2b.AsyncSandbox.kill)
    async def kill(self, **opts):
        self.machine.destroy()
        return True


def fake_e2b_module() -> types.SimpleNamespace:
    CLOCK.now, CLOCK.tick = 0.0, 0.0
    FAULTS.clear()
    FakeAsyncSandbox.created = []
    FakeAsyncSandbox.by_id = {}
    FakeAsyncSandbox.user_templates = {}
    FakeAsyncSandbox.max_lifetime = None
    FakeAsyncTemplate.built = {}
    FakeAsyncTemplate.builds = []
    names = (
        "CommandExitException", "TimeoutException", "SandboxException", "NotFoundException", "FileNotFoundException",
        "SandboxNotFoundException", "SandboxNotRunningException", "SandboxUnreachableException",
        "AuthenticationException", "RateLimitException", "BuildException",
    )
    return types.SimpleNamespace(
        AsyncSandbox=FakeAsyncSandbox, AsyncTemplate=FakeAsyncTemplate, **{n: getattr(e2b, n) for n in names}
    )


# --- Modal ---------------------------------------------------------------

class FakeImage:
    builds: list[tuple[str, ...]] = []

    def __init__(self, steps: tuple[str, ...], env: dict[str, str] | None = None, python: bool = False) -> None:
        self.steps = steps
        self.vars = env or {}  # what ENV steps set: later steps and the sandbox see it
        self.python = python

    @sdk_method(modal.Image.from_registry)
    def from_registry(cls, tag, secret=None, *, setup_dockerfile_commands=[], force_build=False, add_python=None, **kw):
        return cls((f"FROM {tag}",), image_env(tag), python=has_python(tag) or bool(add_python))

    @sdk_method(modal.Image.env)
    def env(self, vars):
        return FakeImage((*self.steps, f"ENV {sorted(vars)}"), {**self.vars, **vars}, self.python)

    @sdk_method(modal.Image.run_commands)
    def run_commands(self, *commands, **kw):
        return FakeImage((*self.steps, *commands), self.vars, self.python)

    @sdk_method(modal.Image.workdir)
    def workdir(self, path):
        return FakeImage((*self.steps, f"WORKDIR {path}"), self.vars, self.python)

    async def bake(self, machine: FakeMachine) -> None:
        """Run the image's steps in ``machine``: what a container of the image would contain."""
        if not self.python:
            # Modal runs its own Python in every container: an image without one cannot be used.
            raise modal.exception.InvalidError(
                f"{self.steps[0]}: the image has no Python; use add_python= to add one"
            )
        (machine.root / "workspace").mkdir(exist_ok=True)
        machine.env = {**machine.env, **self.vars}
        for step in self.steps:
            if step.split(" ", 1)[0] in ("FROM", "ENV", "WORKDIR"):
                continue
            code, out, err = await machine.run(step, "/", self.vars, 900)
            if code != 0:
                raise modal.exception.ImageBuildError(f"Image build failed: {step!r}\n{err.decode()}", "im-fake")

    @sdk_method(modal.Image.build, aio=True)
    async def build(self, app=None):
        fault()
        machine = FakeMachine()
        try:
            await self.bake(machine)
        finally:
            machine.destroy()
        FakeImage.builds.append(self.steps)
        return self


class FakeStream:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def __aiter__(self):
        async def gen():
            for i in range(0, len(self.data), 4096):
                yield self.data[i : i + 4096]

        return gen()


class FakeProcess:
    def __init__(self, code: int, out: bytes, err: bytes) -> None:
        self.code, self.stdout, self.stderr = code, FakeStream(out), FakeStream(err)

    @sdk_method(modal.container_process.ContainerProcess.wait, aio=True)
    async def wait(self):
        return self.code


class FakeFilesystem:
    def __init__(self, sandbox: FakeModalSandbox) -> None:
        self.sandbox = sandbox
        self.machine = sandbox.machine

    @sdk_method(modal.sandbox.sandbox.SandboxFilesystem.make_directory, aio=True)
    async def make_directory(self, remote_path, *, create_parents=True):
        self.sandbox.check()
        self.machine.host(remote_path).mkdir(parents=create_parents, exist_ok=True)

    @sdk_method(modal.sandbox.sandbox.SandboxFilesystem.write_text, aio=True)
    async def write_text(self, data, remote_path):
        self.sandbox.check()
        self.machine.host(remote_path).write_text(data)

    @sdk_method(modal.sandbox.sandbox.SandboxFilesystem.read_text, aio=True)
    async def read_text(self, remote_path):
        self.sandbox.check()
        target = self.machine.host(remote_path)
        if not target.exists():
            raise modal.exception.SandboxFilesystemNotFoundError(f"{remote_path} not found")
        return target.read_text()

    @sdk_method(modal.sandbox.sandbox.SandboxFilesystem.read_bytes, aio=True)
    async def read_bytes(self, remote_path):
        self.sandbox.check()
        target = self.machine.host(remote_path)
        if not target.exists():
            raise modal.exception.SandboxFilesystemNotFoundError(f"{remote_path} not found")
        return target.read_bytes()

    @sdk_method(modal.sandbox.sandbox.SandboxFilesystem.write_bytes, aio=True)
    async def write_bytes(self, data, remote_path):
        self.sandbox.check()
        self.machine.host(remote_path).write_bytes(data)

    @sdk_method(modal.sandbox.sandbox.SandboxFilesystem.remove, aio=True)
    async def remove(self, remote_path, *, recursive=False):
        self.sandbox.check()
        target = self.machine.host(remote_path)
        if not target.exists():
            raise modal.exception.SandboxFilesystemNotFoundError(f"{remote_path} not found")
        target.unlink()


class FakeModalSandbox:
    created: list[FakeModalSandbox] = []
    by_id: dict[str, FakeModalSandbox] = {}
    max_lifetime: float | None = None  # shortens every sandbox's timeout (a long run outlives it)

    def __init__(self, options: dict) -> None:
        self.options = options
        self.object_id = f"sb-{len(self.created)}"
        self.machine = FakeMachine()
        self.filesystem = FakeFilesystem(self)
        timeout = options.get("timeout") or 300
        if self.max_lifetime is not None:
            timeout = min(timeout, self.max_lifetime)
        self.deadline = CLOCK.now + timeout
        self.idle = options.get("idle_timeout")
        self.used = CLOCK.now

    def expired(self) -> bool:
        idle = self.idle is not None and CLOCK.now > self.used + self.idle
        if self.machine.alive and (CLOCK.now > self.deadline or idle):
            self.machine.destroy()
        return not self.machine.alive

    def check(self) -> None:
        fault()
        if self.expired():
            raise modal.exception.SandboxTerminatedError(f"sandbox {self.object_id} has terminated")
        self.used = CLOCK.now

    @sdk_method(modal.Sandbox.create, aio=True)
    async def create(cls, *args, app=None, image=None, **options):
        fault()
        assert isinstance(image, FakeImage), image
        if image.steps not in FakeImage.builds:  # Modal builds the image when a sandbox needs it
            await image.build.aio(app)
        sb = cls({"app": app, "image": image, **options})
        await image.bake(sb.machine)
        cls.created.append(sb)
        cls.by_id[sb.object_id] = sb
        return sb

    @sdk_method(modal.Sandbox.from_id, aio=True)
    async def from_id(cls, sandbox_id, client=None):
        fault()
        if sandbox_id not in cls.by_id:
            raise modal.exception.NotFoundError(f"sandbox {sandbox_id} not found")
        return cls.by_id[sandbox_id]

    @sdk_method(modal.Sandbox.poll, aio=True)
    async def poll(self):
        return 0 if self.expired() else None

    @sdk_method(modal.Sandbox.exec, aio=True)
    async def exec(self, *args, timeout=None, workdir=None, env=None, text=True, **kw):
        self.check()
        CLOCK.advance(CLOCK.tick)
        assert args[:2] == ("bash", "-c"), args
        code, out, err = await self.machine.run(args[2], workdir or "/", env, timeout)
        return FakeProcess(-1 if code is None else code, out, err)

    @sdk_method(modal.Sandbox.terminate, aio=True)
    async def terminate(self, *, wait=False):
        self.machine.destroy()


class FakeApp:
    @sdk_method(modal.App.lookup, aio=True)
    def lookup(cls, name, *, client=None, environment_name=None, create_if_missing=False):
        fault()
        return types.SimpleNamespace(name=name)


def fake_modal_module(*, token: bool = True) -> types.SimpleNamespace:
    CLOCK.now, CLOCK.tick = 0.0, 0.0
    FAULTS.clear()
    FakeModalSandbox.created = []
    FakeModalSandbox.by_id = {}
    FakeModalSandbox.max_lifetime = None
    FakeImage.builds = []
    values = {"token_id": "ak-fake", "token_secret": "as-fake"} if token else {}
    config = types.SimpleNamespace(config=types.SimpleNamespace(get=lambda key, **kw: values.get(key)))
    return types.SimpleNamespace(
        App=FakeApp, Image=FakeImage, Sandbox=FakeModalSandbox, exception=modal.exception, config=config
    )
