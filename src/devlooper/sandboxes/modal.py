"""The Modal backend (``modal`` 1.x).

The environment is a Modal ``Image``: the template's image (with a Python
added by ``add_python`` where the image has none: Modal needs one in every
image), its setup commands and base packages, then one ``run_commands`` step
per install. Modal caches every step, so a later run with the same prefix of
installs starts from the cached image. Because installs are built into the
image (with network), the sandbox itself is created with ``block_network=True``:
tests never reach the network. A new install builds a new image on the current
one and moves the project files to a fresh sandbox from it.

A ``command`` layer (a formatter, a code generator) must see the project, and
an image build step cannot: it runs in the live sandbox instead, on the
project files, without network. Its changes to the project are taken into the
state like on every backend; its changes to the environment live in that
sandbox, so each fresh sandbox (a new install, a rebuild) replays the command
layers in order after the installs, once the project files are in place.

Lifetime: Modal fixes a sandbox's timeout when it is created, so it is the
run's budget (``SandboxSpec.lifetime``, capped at Modal's 24 hours), and
``idle_timeout`` ends a sandbox nobody uses (a paused run) after
``IDLE_LIFETIME``. A sandbox that ended anyway is rebuilt (``RemoteSandbox``).
"""

from __future__ import annotations

import asyncio
import math
import os
import posixpath
import re
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ..bounded import BoundedBuffer
from ..errors import ConfigError
from ..layers import Layer
from .base import (
    ExecResult,
    ProjectEntry,
    SandboxAuthError,
    SandboxError,
    SandboxGoneError,
    SandboxSpec,
    SandboxStartupError,
)
from .process import OUTPUT_CAP
from . import remote
from .remote import (
    IDLE_LIFETIME,
    RemoteSandbox,
    base_steps,
    command_env,
    layer_command,
    listing_command,
    parse_listing,
    remote_cwd,
    remote_path,
    remove_command,
    shell,
)
from .workspace import FILE_CAP, TooLarge

APP_NAME = os.environ.get("DEVLOOPER_MODAL_APP", "devlooper")
DEFAULT_LIFETIME = 3600  # seconds, when the run gives no budget
MAX_LIFETIME = 24 * 3600  # Modal's longest sandbox timeout
MEMORY_MB = 4096
CPU = 2.0
PYTHON = "3.11"  # what add_python adds to an image without Python


def _sdk() -> ModuleType:
    try:
        import modal
    except ImportError:
        raise ConfigError("the modal sandbox needs its SDK: pip install 'devlooper[modal]'") from None
    return modal


def _has_token(sdk: ModuleType) -> bool:
    config = sdk.config.config
    return bool(config.get("token_id") and config.get("token_secret"))


def has_python(image: str) -> bool:
    """Whether a registry image ships Python: the official python images (and their
    variants) do; node, rust, debian and the like do not."""
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:  # a tag, not a registry's port
        name = name.rsplit(":", 1)[0]
    return re.fullmatch(r"(.*/)?python", name) is not None


class ModalSandbox(RemoteSandbox):
    name = "modal"

    def __init__(self, spec: SandboxSpec) -> None:
        super().__init__(spec)
        self.app: Any = None
        self.sb: Any = None
        self.image: Any = None

    @classmethod
    def check_config(cls, ctx: object = None) -> None:
        if not _has_token(_sdk()):
            raise ConfigError(
                "the modal sandbox needs a Modal token: set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET, or run `modal token new`"
            )

    @property
    def sandbox_id(self) -> str | None:
        return getattr(self.sb, "object_id", None)

    def image_for(self, layers: Sequence[Layer]) -> Any:
        """The template's image with the installs of ``layers``, one cached Modal step each."""
        sdk = _sdk()
        template = self.template
        python = None if has_python(template.image) else PYTHON
        image = sdk.Image.from_registry(template.image, add_python=python).env(command_env(template))
        for step in base_steps(template):
            image = image.run_commands(shell(step, template))
        for layer in layers:
            if layer["kind"] == "install":
                image = image.run_commands(shell(layer_command(template, layer), template))
        return image.workdir(template.workdir)

    # --- faults ----------------------------------------------------------------
    def _fault(self, exc: BaseException, doing: str) -> SandboxError:
        errors = _sdk().exception
        if isinstance(exc, errors.AuthError | errors.PermissionDeniedError):
            return SandboxAuthError(f"Modal rejected the token while {doing}: {exc}")
        if isinstance(exc, errors.SandboxTerminatedError | errors.SandboxTimeoutError | errors.NotFoundError):
            return SandboxGoneError(f"the Modal sandbox is gone ({doing}): {exc}")
        if isinstance(exc, errors.ResourceExhaustedError):
            return SandboxError(f"Modal refused the request (quota) while {doing}: {exc}")
        return SandboxError(f"Modal failed while {doing}: {exc}")

    # --- lifecycle -------------------------------------------------------
    async def _open(self, layers: Sequence[Layer]) -> None:
        sdk = _sdk()
        try:
            self.app = await sdk.App.lookup.aio(APP_NAME, create_if_missing=True)
            self.image = self.image_for(layers)
            self.sb = await self._create(self.image)
        except sdk.exception.AuthError as exc:
            raise SandboxAuthError(f"Modal rejected the token: {exc}") from exc
        except sdk.exception.Error as exc:
            raise SandboxStartupError(f"could not create a Modal sandbox: {exc}") from exc
        self.layers = list(layers)

    def lifetime(self) -> int:
        budget = self.spec.lifetime or DEFAULT_LIFETIME
        return int(min(MAX_LIFETIME, max(IDLE_LIFETIME, budget)))

    async def _create(self, image: Any) -> Any:
        return await _sdk().Sandbox.create.aio(
            app=self.app,
            image=image,
            timeout=self.lifetime(),
            idle_timeout=IDLE_LIFETIME,
            workdir=self.template.workdir,
            cpu=CPU,
            memory=MEMORY_MB,
            block_network=True,
        )

    async def reconnect(self, sandbox_id: str, layers: Sequence[Layer]) -> bool:
        sdk = _sdk()
        try:
            sb = await sdk.Sandbox.from_id.aio(sandbox_id)
            if await sb.poll.aio() is not None:  # it has ended (its timeout, an idle timeout)
                return False
            self.app = await sdk.App.lookup.aio(APP_NAME, create_if_missing=True)
        except sdk.exception.AuthError as exc:
            raise SandboxAuthError(f"Modal rejected the token: {exc}") from exc
        except sdk.exception.Error:
            return False
        self.sb = sb
        self.image = self.image_for(layers)
        self._extended = remote.clock()
        self.with_layers(layers)
        return True

    async def park(self, idle: float) -> None:
        # Modal cannot shorten a timeout; the sandbox's idle_timeout ends it if nobody returns.
        self.sb = None

    async def _drop(self) -> None:
        await self.close()

    async def close(self) -> None:
        sb, self.sb = self.sb, None
        if sb is not None:
            try:
                await sb.terminate.aio()
            except _sdk().exception.Error:
                pass  # already gone

    def _live(self) -> Any:
        if self.sb is None:
            raise SandboxGoneError("the Modal sandbox was let go")
        return self.sb

    # --- files -------------------------------------------------------------
    async def _write(self, path: str, content: str) -> None:
        target = remote_path(self.template, path)
        fs = self._live().filesystem
        try:
            await fs.make_directory.aio(posixpath.dirname(target), create_parents=True)
            await fs.write_text.aio(content, target)
        except _sdk().exception.Error as exc:
            raise self._fault(exc, f"writing {path}") from exc

    async def _read(self, path: str) -> str:
        sdk = _sdk()
        try:
            return await self._live().filesystem.read_text.aio(remote_path(self.template, path))
        except sdk.exception.SandboxFilesystemNotFoundError:
            raise FileNotFoundError(path) from None
        except sdk.exception.Error as exc:
            raise self._fault(exc, f"reading {path}") from exc

    async def _delete(self, path: str) -> None:
        sdk = _sdk()
        try:
            await self._live().filesystem.remove.aio(remote_path(self.template, path))
        except sdk.exception.SandboxFilesystemNotFoundError:
            pass
        except sdk.exception.Error as exc:
            raise self._fault(exc, f"deleting {path}") from exc

    # --- the project part of the workspace -----------------------------------
    async def _list(self) -> list[ProjectEntry]:
        return parse_listing(self.template, await self._exec(listing_command(self.template), timeout=120))

    async def _read_bytes(self, path: str) -> bytes:
        sdk = _sdk()
        try:
            data = await self._live().filesystem.read_bytes.aio(remote_path(self.template, path))
        except sdk.exception.SandboxFilesystemNotFoundError:
            raise FileNotFoundError(path) from None
        except sdk.exception.Error as exc:
            raise self._fault(exc, f"reading {path}") from exc
        if len(data) > FILE_CAP:
            raise TooLarge(f"{path} holds more than the {FILE_CAP} bytes read back")
        return bytes(data)

    async def _remove(self, path: str) -> None:
        result = await self._exec(remove_command(self.template, path), timeout=60)
        if not result.ok:
            raise SandboxError(f"Modal could not remove {path}:\n{result.output[-2000:]}")

    async def _snapshot(self) -> dict[str, bytes]:
        """The project files of the live sandbox, to move to a fresh one."""
        files = {}
        for entry in await self._list():
            if entry.kind == "file":
                try:
                    files[entry.path] = await self._read_bytes(entry.path)
                except (FileNotFoundError, TooLarge):
                    continue  # not a project file the state could hold
        return files

    async def _restore(self, files: dict[str, bytes]) -> None:
        fs = self._live().filesystem
        for path, data in files.items():
            target = posixpath.join(self.template.workdir, path)
            try:
                await fs.make_directory.aio(posixpath.dirname(target), create_parents=True)
                await fs.write_bytes.aio(data, target)
            except _sdk().exception.Error as exc:
                raise self._fault(exc, f"writing {path}") from exc

    # --- commands ------------------------------------------------------------
    async def _exec(
        self, command, *, timeout: float, cwd: str | None = None, env: dict[str, str] | None = None
    ) -> ExecResult:
        sdk = _sdk()
        sb = self._live()
        out, err = BoundedBuffer(OUTPUT_CAP), BoundedBuffer(OUTPUT_CAP)
        started = time.monotonic()
        try:
            # Modal kills the process at its timeout (it does not outlive the call).
            proc = await sb.exec.aio(
                "bash",
                "-c",
                shell(command, self.template),
                timeout=max(1, math.ceil(timeout)),
                workdir=remote_cwd(self.template, cwd),
                env=command_env(self.template, env),
                text=False,
            )
            await asyncio.gather(_drain(proc.stdout, out), _drain(proc.stderr, err))
            code = await proc.wait.aio()
        except sdk.exception.ExecTimeoutError:
            code = -1
        except sdk.exception.Error as exc:
            raise self._fault(exc, "running a command") from exc
        timed_out = code == -1  # how Modal reports an exec that outlived its timeout
        return ExecResult(
            exit_code=124 if timed_out else code,
            stdout=out.text(),
            stderr=err.text(),
            timed_out=timed_out,
            killed="timeout" if timed_out else None,
            truncated=bool(out.dropped or err.dropped),
            dropped=out.dropped + err.dropped,
            duration=time.monotonic() - started,
        )

    async def _replay_commands(self, layers: Sequence[Layer]) -> ExecResult | None:
        """Run the command layers of ``layers`` in order in the live sandbox; the first failure."""
        for layer in layers:
            if layer["kind"] != "command":
                continue
            result = await self._exec(layer["spec"], timeout=900)
            if not result.ok:
                return ExecResult(
                    result.exit_code,
                    stderr=f"replaying the command {layer['spec']!r} in a fresh sandbox failed:\n{result.output[-2000:]}",
                )
        return None

    async def _add_layer(self, layer: Layer, *, timeout: float) -> ExecResult:
        """A command runs in the live sandbox (it sees the project); an install is built
        into a new image (cached by Modal), and the project moves to a sandbox from it."""
        if layer["kind"] == "command":
            result = await self._exec(layer["spec"], timeout=timeout)
            if result.ok:
                self.layers = [*self.layers, layer]
            return result
        sdk = _sdk()
        started = time.monotonic()
        image = self.image_for([*self.layers, layer])
        try:
            await asyncio.wait_for(image.build.aio(self.app), timeout)
        except asyncio.TimeoutError:
            return ExecResult(124, stderr="image build timed out", timed_out=True, killed="timeout", duration=timeout)
        except sdk.exception.ImageBuildError as exc:  # the step failed: that is data
            return ExecResult(1, stderr=str(exc), duration=time.monotonic() - started)
        except sdk.exception.Error as exc:  # the service failed, not the install
            raise self._fault(exc, "building an image") from exc
        files = await self._snapshot()
        old = self._live()
        try:
            self.sb = await self._create(image)
        except sdk.exception.Error as exc:
            self.sb = old
            raise self._fault(exc, "creating a sandbox") from exc
        await self._restore(files)
        failed = await self._replay_commands(self.layers)
        stale = old
        if failed is not None:  # keep the sandbox that works; the install is not part of it
            self.sb, stale = old, self.sb
        try:
            await stale.terminate.aio()
        except sdk.exception.Error:
            pass
        if failed is not None:
            return failed
        self.image, self.layers = image, [*self.layers, layer]
        return ExecResult(0, stdout=f"built layer: {self.layer_command(layer)}", duration=time.monotonic() - started)


async def _drain(stream: Any, buf: BoundedBuffer) -> None:
    async for chunk in stream:
        buf.write(chunk if isinstance(chunk, bytes) else chunk.encode())
