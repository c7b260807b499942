"""The Modal backend (``modal`` 1.x).

The environment is a Modal ``Image``: the template's image, its setup
commands and base packages, then one ``run_commands`` step per install. Modal
caches every step, so a later run with the same prefix of installs starts from
the cached image. Because installs are built into the image (with network),
the sandbox itself is created with ``block_network=True``: tests never reach
the network. A new install builds a new image on the current one and moves the
project files to a fresh sandbox from it.

A ``command`` layer (a formatter, a code generator) must see the project, and
an image build step cannot: it runs in the live sandbox instead, on the
project files, without network. Its changes to the project are taken into the
state like on every backend; its changes to the environment live in that
sandbox, so each fresh sandbox (a new install, a rebuild) replays the command
layers in order after the installs, once the project files are in place.
"""

from __future__ import annotations

import asyncio
import math
import os
import posixpath
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ..bounded import BoundedBuffer
from ..errors import ConfigError
from ..layers import Layer
from .base import ExecResult, ProjectEntry, Sandbox, SandboxError, SandboxSpec, SandboxStartupError
from .process import OUTPUT_CAP
from .remote import (
    REMOTE_ENV,
    base_steps,
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
LIFETIME = 3600  # seconds the sandbox lives at most
MEMORY_MB = 4096
CPU = 2.0


def _sdk() -> ModuleType:
    try:
        import modal
    except ImportError:
        raise ConfigError("the modal sandbox needs its SDK: pip install 'devlooper[modal]'") from None
    return modal


def _has_token(sdk: ModuleType) -> bool:
    config = sdk.config.config
    return bool(config.get("token_id") and config.get("token_secret"))


class ModalSandbox(Sandbox):
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

    def image_for(self, layers: Sequence[Layer]) -> Any:
        """The template's image with the installs of ``layers``, one cached Modal step each."""
        sdk = _sdk()
        image = sdk.Image.from_registry(self.template.image).env(dict(REMOTE_ENV))
        for step in base_steps(self.template):
            image = image.run_commands(step)
        for layer in layers:
            if layer["kind"] == "install":
                image = image.run_commands(layer_command(self.template, layer))
        return image.workdir(self.template.workdir)

    # --- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        sdk = _sdk()
        try:
            self.app = await sdk.App.lookup.aio(APP_NAME, create_if_missing=True)
            self.image = self.image_for(self.spec.layers)
            self.sb = await self._create(self.image)
        except sdk.exception.AuthError as exc:
            raise ConfigError(f"Modal rejected the token: {exc}") from exc
        except sdk.exception.Error as exc:
            raise SandboxStartupError(f"could not create a Modal sandbox: {exc}") from exc
        failed = await self._replay_commands(self.spec.layers)
        if failed is not None:
            await self.close()
            raise SandboxStartupError(failed.stderr)
        self.layers = list(self.spec.layers)

    async def _replay_commands(self, layers: Sequence[Layer]) -> ExecResult | None:
        """Run the command layers of ``layers`` in order in the live sandbox; the first failure."""
        for layer in layers:
            if layer["kind"] != "command":
                continue
            result = await self.exec(layer["spec"], timeout=900)
            if not result.ok:
                return ExecResult(
                    result.exit_code,
                    stderr=f"replaying the command {layer['spec']!r} in a fresh sandbox failed:\n{result.output[-2000:]}",
                )
        return None

    async def _create(self, image: Any) -> Any:
        return await _sdk().Sandbox.create.aio(
            app=self.app,
            image=image,
            timeout=LIFETIME,
            workdir=self.template.workdir,
            cpu=CPU,
            memory=MEMORY_MB,
            block_network=True,
        )

    async def close(self) -> None:
        sb, self.sb = self.sb, None
        if sb is not None:
            try:
                await sb.terminate.aio()
            except _sdk().exception.Error:
                pass  # already gone

    # --- files -------------------------------------------------------------
    async def write_file(self, path: str, content: str) -> None:
        target = remote_path(self.template, path)
        fs = self.sb.filesystem
        try:
            await fs.make_directory.aio(posixpath.dirname(target), create_parents=True)
            await fs.write_text.aio(content, target)
        except _sdk().exception.Error as exc:
            raise SandboxError(f"Modal could not write {path}: {exc}") from exc

    async def read_file(self, path: str) -> str:
        sdk = _sdk()
        try:
            return await self.sb.filesystem.read_text.aio(remote_path(self.template, path))
        except sdk.exception.SandboxFilesystemNotFoundError:
            raise FileNotFoundError(path) from None
        except sdk.exception.Error as exc:
            raise SandboxError(f"Modal could not read {path}: {exc}") from exc

    async def delete_file(self, path: str) -> None:
        sdk = _sdk()
        try:
            await self.sb.filesystem.remove.aio(remote_path(self.template, path))
        except sdk.exception.SandboxFilesystemNotFoundError:
            pass
        except sdk.exception.Error as exc:
            raise SandboxError(f"Modal could not delete {path}: {exc}") from exc

    # --- the project part of the workspace -----------------------------------
    async def list_project(self) -> list[ProjectEntry]:
        return parse_listing(self.template, await self.exec(listing_command(self.template), timeout=120))

    async def read_project_bytes(self, path: str) -> bytes:
        sdk = _sdk()
        try:
            data = await self.sb.filesystem.read_bytes.aio(remote_path(self.template, path))
        except sdk.exception.SandboxFilesystemNotFoundError:
            raise FileNotFoundError(path) from None
        except sdk.exception.Error as exc:
            raise SandboxError(f"Modal could not read {path}: {exc}") from exc
        if len(data) > FILE_CAP:
            raise TooLarge(f"{path} holds more than the {FILE_CAP} bytes read back")
        return bytes(data)

    async def remove_entry(self, path: str) -> None:
        result = await self.exec(remove_command(self.template, path), timeout=60)
        if not result.ok:
            raise SandboxError(f"Modal could not remove {path}:\n{result.output[-2000:]}")

    async def _snapshot(self) -> dict[str, bytes]:
        """The project files of the live sandbox, to move to a fresh one."""
        files = {}
        for entry in await self.list_project():
            if entry.kind == "file":
                try:
                    files[entry.path] = await self.read_project_bytes(entry.path)
                except (FileNotFoundError, TooLarge):
                    continue  # not a project file the state could hold
        return files

    async def _restore(self, files: dict[str, bytes]) -> None:
        fs = self.sb.filesystem
        for path, data in files.items():
            target = posixpath.join(self.template.workdir, path)
            try:
                await fs.make_directory.aio(posixpath.dirname(target), create_parents=True)
                await fs.write_bytes.aio(data, target)
            except _sdk().exception.Error as exc:
                raise SandboxError(f"Modal could not write {path}: {exc}") from exc

    # --- commands ------------------------------------------------------------
    async def exec(
        self,
        command: str | Sequence[str],
        *,
        timeout: float,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        network: bool = False,
    ) -> ExecResult:
        sdk = _sdk()
        out, err = BoundedBuffer(OUTPUT_CAP), BoundedBuffer(OUTPUT_CAP)
        started = time.monotonic()
        try:
            proc = await self.sb.exec.aio(
                "bash",
                "-c",
                shell(command),
                timeout=max(1, math.ceil(timeout)),
                workdir=remote_cwd(self.template, cwd),
                env={**REMOTE_ENV, **(env or {})},
                text=False,
            )
            await asyncio.gather(_drain(proc.stdout, out), _drain(proc.stderr, err))
            code = await proc.wait.aio()
        except sdk.exception.ExecTimeoutError:
            code = -1
        except sdk.exception.Error as exc:
            raise SandboxError(f"Modal command failed: {exc}") from exc
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

    async def add_layer(self, layer: Layer, *, timeout: float) -> ExecResult:
        """A command runs in the live sandbox (it sees the project); an install is built
        into a new image (cached by Modal), and the project moves to a sandbox from it."""
        if layer["kind"] == "command":
            result = await self.exec(layer["spec"], timeout=timeout)
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
        except sdk.exception.RemoteError as exc:  # ImageBuildError: the step failed; that is data
            return ExecResult(1, stderr=str(exc), duration=time.monotonic() - started)
        files = await self._snapshot()
        old = self.sb
        try:
            self.sb = await self._create(image)
        except sdk.exception.Error as exc:
            self.sb = old
            raise SandboxStartupError(f"could not create a Modal sandbox: {exc}") from exc
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
