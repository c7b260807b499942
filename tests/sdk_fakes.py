"""Fakes of the E2B and Modal SDKs at the boundary devlooper uses.

Every fake call is first bound to the signature of the *installed* SDK's
method (``inspect.signature(real).bind``) and, for Modal, the real method must
offer ``.aio``; so an adapter call that the real SDK would reject fails here
too, and the fakes cannot drift from the SDKs. Commands run for real on this
machine, in a temporary directory that stands for the remote filesystem
(absolute paths the adapters use are mapped into it). Exceptions are the
SDKs' own classes.
"""

from __future__ import annotations

import asyncio
import inspect
import os
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


class FakeMachine:
    """A remote filesystem in a temporary directory, and commands run in it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fake-remote-"))
        self.alive = True

    def host(self, path: str) -> Path:
        assert path.startswith("/"), path
        return self.root / path.lstrip("/")

    def translate(self, command: str) -> str:
        # The adapters' own absolute paths, mapped into the fake filesystem.
        for absolute in ("/workspace", "/etc/devlooper-env", "/opt/devlooper"):
            command = command.replace(absolute, str(self.root) + absolute)
        return command.replace("chown user: ", "true ")

    async def run(self, command: str, cwd: str, env: dict | None, timeout: float | None):
        (self.root / "etc").mkdir(exist_ok=True)
        workdir = self.host(cwd)
        workdir.mkdir(parents=True, exist_ok=True)
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", self.translate(command), cwd=workdir,
            env={"PATH": os.environ["PATH"], **{k: self.translate(v) for k, v in (env or {}).items()}},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            os.killpg(proc.pid, 9)
            await proc.wait()
            return None, b"", b""
        return proc.returncode, out, err

    def destroy(self) -> None:
        self.alive = False
        shutil.rmtree(self.root, ignore_errors=True)


# --- E2B -----------------------------------------------------------------

class FakeE2BCommands:
    def __init__(self, machine: FakeMachine) -> None:
        self.machine = machine

    @sdk_method(e2b.sandbox_async.commands.command.Commands.run)
    async def run(self, cmd, background=None, envs=None, user=None, cwd=None, on_stdout=None, on_stderr=None,
                  stdin=None, timeout=60, request_timeout=None, *, retain_output=True):
        code, out, err = await self.machine.run(cmd, cwd or "/", envs, timeout)
        if code is None:
            raise e2b.TimeoutException("context deadline exceeded")
        for data, callback in ((out, on_stdout), (err, on_stderr)):
            text = data.decode(errors="replace")
            if callback and text:
                for line in text.splitlines(keepends=True):
                    callback(line)
        stdout, stderr = (out.decode(), err.decode()) if retain_output else ("", "")
        if code != 0:
            raise e2b.CommandExitException(stderr=stderr, stdout=stdout, exit_code=code, error=None)
        return types.SimpleNamespace(exit_code=0, stdout=stdout, stderr=stderr, error=None)


class FakeE2BFiles:
    def __init__(self, machine: FakeMachine) -> None:
        self.machine = machine

    @sdk_method(e2b.sandbox_async.filesystem.filesystem.Filesystem.write)
    async def write(self, path, data, user=None, request_timeout=None, gzip=False, use_octet_stream=None, metadata=None):
        target = self.machine.host(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data)

    @sdk_method(e2b.sandbox_async.filesystem.filesystem.Filesystem.read)
    async def read(self, path, format="text", user=None, request_timeout=None, gzip=False, stream_idle_timeout=None):
        target = self.machine.host(path)
        if not target.exists():
            raise e2b.FileNotFoundException(f"file {path} not found")
        return bytearray(target.read_bytes()) if format == "bytes" else target.read_text()

    @sdk_method(e2b.sandbox_async.filesystem.filesystem.Filesystem.remove)
    async def remove(self, path, user=None, request_timeout=None):
        target = self.machine.host(path)
        if not target.exists():
            raise e2b.FileNotFoundException(f"file {path} not found")
        target.unlink()


class FakeAsyncSandbox:
    created: list[FakeAsyncSandbox] = []
    baked: str | None = None  # contents of /etc/devlooper-env in the "template"

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.machine = FakeMachine()
        if self.baked is not None:
            (self.machine.root / "etc").mkdir()
            (self.machine.root / "etc" / "devlooper-env").write_text(self.baked)
        self.commands = FakeE2BCommands(self.machine)
        self.files = FakeE2BFiles(self.machine)

    @sdk_method(e2b.AsyncSandbox.create)
    async def create(cls, template=None, timeout=None, **options):
        sbx = cls(template=template, timeout=timeout, **options)
        cls.created.append(sbx)
        return sbx

    @sdk_method(e2b.AsyncSandbox.kill)
    async def kill(self, **opts):
        self.machine.destroy()
        return True


def fake_e2b_module() -> types.SimpleNamespace:
    FakeAsyncSandbox.created = []
    FakeAsyncSandbox.baked = None
    names = ("CommandExitException", "TimeoutException", "SandboxException", "NotFoundException", "AuthenticationException")
    return types.SimpleNamespace(AsyncSandbox=FakeAsyncSandbox, **{n: getattr(e2b, n) for n in names})


# --- Modal ---------------------------------------------------------------

class FakeImage:
    builds: list[tuple[str, ...]] = []

    def __init__(self, steps: tuple[str, ...], env: dict[str, str] | None = None) -> None:
        self.steps = steps
        self.vars = env or {}  # what ENV steps set: later steps and the sandbox see it

    @sdk_method(modal.Image.from_registry)
    def from_registry(cls, tag, secret=None, *, setup_dockerfile_commands=[], force_build=False, add_python=None, **kw):
        return cls((f"FROM {tag}",))

    @sdk_method(modal.Image.env)
    def env(self, vars):
        return FakeImage((*self.steps, f"ENV {sorted(vars)}"), {**self.vars, **vars})

    @sdk_method(modal.Image.run_commands)
    def run_commands(self, *commands, **kw):
        return FakeImage((*self.steps, *commands), self.vars)

    @sdk_method(modal.Image.workdir)
    def workdir(self, path):
        return FakeImage((*self.steps, f"WORKDIR {path}"), self.vars)

    async def bake(self, machine: FakeMachine) -> None:
        """Run the image's steps in ``machine``: what a container of the image would contain."""
        (machine.root / "workspace").mkdir(exist_ok=True)
        for step in self.steps:
            if step.split(" ", 1)[0] in ("FROM", "ENV", "WORKDIR"):
                continue
            code, out, err = await machine.run(step, "/", self.vars, 60)
            if code != 0:
                raise modal.exception.ImageBuildError(f"Image build failed: {step!r}\n{err.decode()}", "im-fake")

    @sdk_method(modal.Image.build, aio=True)
    async def build(self, app=None):
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
    def __init__(self, machine: FakeMachine) -> None:
        self.machine = machine

    @sdk_method(modal.sandbox.sandbox.SandboxFilesystem.make_directory, aio=True)
    async def make_directory(self, remote_path, *, create_parents=True):
        self.machine.host(remote_path).mkdir(parents=create_parents, exist_ok=True)

    @sdk_method(modal.sandbox.sandbox.SandboxFilesystem.write_text, aio=True)
    async def write_text(self, data, remote_path):
        self.machine.host(remote_path).write_text(data)

    @sdk_method(modal.sandbox.sandbox.SandboxFilesystem.read_text, aio=True)
    async def read_text(self, remote_path):
        target = self.machine.host(remote_path)
        if not target.exists():
            raise modal.exception.SandboxFilesystemNotFoundError(f"{remote_path} not found")
        return target.read_text()

    @sdk_method(modal.sandbox.sandbox.SandboxFilesystem.read_bytes, aio=True)
    async def read_bytes(self, remote_path):
        target = self.machine.host(remote_path)
        if not target.exists():
            raise modal.exception.SandboxFilesystemNotFoundError(f"{remote_path} not found")
        return target.read_bytes()

    @sdk_method(modal.sandbox.sandbox.SandboxFilesystem.write_bytes, aio=True)
    async def write_bytes(self, data, remote_path):
        self.machine.host(remote_path).write_bytes(data)

    @sdk_method(modal.sandbox.sandbox.SandboxFilesystem.remove, aio=True)
    async def remove(self, remote_path, *, recursive=False):
        target = self.machine.host(remote_path)
        if not target.exists():
            raise modal.exception.SandboxFilesystemNotFoundError(f"{remote_path} not found")
        target.unlink()


class FakeModalSandbox:
    created: list[FakeModalSandbox] = []

    def __init__(self, options: dict) -> None:
        self.options = options
        self.machine = FakeMachine()
        self.filesystem = FakeFilesystem(self.machine)

    @sdk_method(modal.Sandbox.create, aio=True)
    async def create(cls, *args, app=None, image=None, **options):
        assert isinstance(image, FakeImage), image
        if image.steps not in FakeImage.builds:  # Modal builds the image when a sandbox needs it
            await image.build.aio(app)
        sb = cls({"app": app, "image": image, **options})
        await image.bake(sb.machine)
        cls.created.append(sb)
        return sb

    @sdk_method(modal.Sandbox.exec, aio=True)
    async def exec(self, *args, timeout=None, workdir=None, env=None, text=True, **kw):
        assert self.machine.alive, "exec on a terminated sandbox"
        assert args[:2] == ("bash", "-c"), args
        code, out, err = await self.machine.run(args[2], workdir or "/", env, timeout)
        return FakeProcess(-1 if code is None else code, out, err)

    @sdk_method(modal.Sandbox.terminate, aio=True)
    async def terminate(self, *, wait=False):
        self.machine.destroy()


class FakeApp:
    @sdk_method(modal.App.lookup, aio=True)
    def lookup(cls, name, *, client=None, environment_name=None, create_if_missing=False):
        return types.SimpleNamespace(name=name)


def fake_modal_module(*, token: bool = True) -> types.SimpleNamespace:
    FakeModalSandbox.created = []
    FakeImage.builds = []
    values = {"token_id": "ak-fake", "token_secret": "as-fake"} if token else {}
    config = types.SimpleNamespace(config=types.SimpleNamespace(get=lambda key, **kw: values.get(key)))
    return types.SimpleNamespace(
        App=FakeApp, Image=FakeImage, Sandbox=FakeModalSandbox, exception=modal.exception, config=config
    )
