"""The E2B backend (``e2b`` 2.x, ``AsyncSandbox`` and ``AsyncTemplate``).

The environment is an E2B template built from the env template's image with the
SDK's template builder: the template's steps and the installs of the layers
before the first command layer, named ``devlooper-<key>`` with the same key as
the local environment cache (``layers_key``), so a later run with the same
environment starts from it without building. Layers added during the run (and
command layers, which must see the project) run in the live sandbox.

``DEVLOOPER_E2B_TEMPLATE`` names a template of the user's instead: it is used as
it is, and the steps it lacks are replayed in each sandbox. Such a template may
carry ``/etc/devlooper-env`` with the keys of the steps it contains (see
``dockerfile`` and docs/sandboxes.md).

One unprivileged user (``user``) runs every environment step and every test:
the environment directory and the workdir belong to it, and the runtime's tool
homes are inside the environment directory (``remote.tool_env``). Only the
first step (making those directories) runs as root.

A sandbox lives ``ACTIVE_LIFETIME`` seconds past its last use (``set_timeout``
extends it while the run works), ``IDLE_LIFETIME`` once parked for a paused run,
and is killed when the run ends. E2B decides network access when a sandbox is
created, so on this backend the network stays on while tests run
(``layer_network=False`` turns it off for the whole sandbox).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from collections.abc import Sequence
from types import ModuleType

from ..bounded import BoundedBuffer
from ..errors import ConfigError
from ..layers import Layer
from ..templates.base import EnvTemplate
from .base import (
    ExecResult,
    ProjectEntry,
    SandboxAuthError,
    SandboxError,
    SandboxGoneError,
    SandboxSpec,
    SandboxStartupError,
    layers_key,
)
from .process import OUTPUT_CAP
from . import remote
from .remote import (
    ACTIVE_LIFETIME,
    ENV_DIR,
    REMOTE_ENV,
    RemoteSandbox,
    base_steps,
    command_env,
    layer_command,
    listing_command,
    parse_listing,
    prepare_step,
    remote_cwd,
    remote_path,
    remove_command,
    shell,
)
from .workspace import FILE_CAP, TooLarge

MARKER = "/etc/devlooper-env"  # keys of the environments baked into a custom E2B template
USER, ROOT = "user", "root"  # E2B's unprivileged user, and root for the first step only
BUILD_CPUS, BUILD_MEMORY_MB = 2, 4096  # what sandboxes from a built template get
KILL_GRACE = 30  # seconds the SDK's own stream deadline is given past a command's timeout


def _sdk() -> ModuleType:
    try:
        import e2b
    except ImportError:
        raise ConfigError("the e2b sandbox needs its SDK: pip install 'devlooper[e2b]'") from None
    return e2b


def user_template() -> str | None:
    """A template the user built and named in ``DEVLOOPER_E2B_TEMPLATE``, if any."""
    return os.environ.get("DEVLOOPER_E2B_TEMPLATE") or None


def template_name(template: EnvTemplate, layers: Sequence[Layer]) -> str:
    """The E2B template with this environment, named by the local cache's key."""
    return f"devlooper-{layers_key(template, layers)}"


def dockerfile(template: EnvTemplate, layers: Sequence[Layer] = ()) -> str:
    """A Dockerfile for a custom E2B template with the environment (and ``layers``) baked in.

    Build it with ``e2b template build -n NAME -d e2b.Dockerfile`` and run
    devlooper with ``DEVLOOPER_E2B_TEMPLATE=NAME``.
    """
    keys = [layers_key(template, layers[:n]) for n in range(len(layers) + 1)]
    steps = base_steps(template) + [layer_command(template, layer) for layer in layers]
    lines = [f"FROM {template.image}", "ENV " + " ".join(f"{k}={v}" for k, v in command_env(template).items())]
    lines += [f"RUN {step}" for step in steps]
    lines += [f"RUN mkdir -p {template.workdir} && printf '%s\\n' {' '.join(keys)} > {MARKER}"]
    lines += [f"WORKDIR {template.workdir}"]
    return "\n".join(lines) + "\n"


def root_step(template: EnvTemplate) -> str:
    """Root's one step: the environment directory, the workdir and the links into the
    environment (``prepare_step``), then all of it made the user's."""
    return f"{prepare_step(template)} && chown -R {USER}: {ENV_DIR} {shlex.quote(template.workdir)}"


class E2BSandbox(RemoteSandbox):
    name = "e2b"

    def __init__(self, spec: SandboxSpec) -> None:
        super().__init__(spec)
        self.sbx = None

    @classmethod
    def check_config(cls, ctx: object = None) -> None:
        _sdk()
        if not os.environ.get("E2B_API_KEY"):
            raise ConfigError("the e2b sandbox needs E2B_API_KEY (create one at https://e2b.dev/dashboard)")

    @property
    def sandbox_id(self) -> str | None:
        return getattr(self.sbx, "sandbox_id", None)

    # --- faults ----------------------------------------------------------------
    def _fault(self, exc: BaseException, doing: str) -> SandboxError:
        """The typed error for an SDK exception: gone (rebuild), auth (stop), or other."""
        sdk = _sdk()
        if isinstance(exc, sdk.AuthenticationException):
            return SandboxAuthError(f"E2B rejected E2B_API_KEY while {doing}: {exc}")
        gone = (sdk.SandboxNotFoundException, sdk.SandboxNotRunningException, sdk.SandboxUnreachableException)
        if isinstance(exc, gone):
            return SandboxGoneError(f"the E2B sandbox is gone ({doing}): {exc}")
        if isinstance(exc, sdk.RateLimitException):
            return SandboxError(f"E2B refused the request (rate limit or quota) while {doing}: {exc}")
        return SandboxError(f"E2B failed while {doing}: {exc}")

    # --- lifecycle -------------------------------------------------------
    async def _open(self, layers: Sequence[Layer]) -> None:
        sdk = _sdk()
        custom = user_template()
        name = custom or await self._template(layers)
        try:
            self.sbx = await sdk.AsyncSandbox.create(
                template=name,
                timeout=ACTIVE_LIFETIME,
                metadata={"devlooper_run": self.spec.run_id[:64]},
                allow_internet_access=self.spec.layer_network,
            )
        except sdk.AuthenticationException as exc:
            raise SandboxAuthError(f"E2B rejected E2B_API_KEY: {exc}") from exc
        except sdk.NotFoundException as exc:
            raise SandboxStartupError(f"the E2B template {name!r} does not exist: {exc}") from exc
        except sdk.SandboxException as exc:
            raise SandboxStartupError(f"could not create an E2B sandbox from {name!r}: {exc}") from exc
        try:
            if custom:
                await self._complete(layers)
            self.layers = list(layers)
        except BaseException:
            await self.close()
            raise

    async def _template(self, layers: Sequence[Layer]) -> str:
        """The E2B template with the environment and ``layers``, built unless it exists."""
        sdk = _sdk()
        name = template_name(self.template, layers)
        try:
            if await sdk.AsyncTemplate.exists(name):
                return name
            steps = base_steps(self.template)[1:] + [layer_command(self.template, layer) for layer in layers]
            # set_envs holds during the build only; each command in a sandbox is given them again.
            builder = (
                sdk.AsyncTemplate()
                .from_image(self.template.image)
                .set_envs(command_env(self.template))
                .run_cmd(root_step(self.template), user=ROOT)
                .set_user(USER)
                .set_workdir(self.template.workdir)
            )
            for step in steps:
                builder = builder.run_cmd(shell(step, self.template), user=USER)
            await sdk.AsyncTemplate.build(builder, name, cpu_count=BUILD_CPUS, memory_mb=BUILD_MEMORY_MB)
        except sdk.AuthenticationException as exc:
            raise SandboxAuthError(f"E2B rejected E2B_API_KEY: {exc}") from exc
        except (sdk.BuildException, sdk.SandboxException) as exc:
            raise SandboxStartupError(f"building the E2B template {name!r} failed: {exc}") from exc
        return name

    async def _complete(self, layers: Sequence[Layer]) -> None:
        """On a user's template: the steps it has not baked in, replayed in the sandbox."""
        result = await self._run(root_step(self.template), timeout=60, user=ROOT, at="/")
        if not result.ok:
            raise SandboxStartupError(f"could not prepare the E2B sandbox:\n{result.output}")
        baked = set((await self._run(f"cat {MARKER} 2>/dev/null || true", timeout=30, at="/")).stdout.split())
        done = max((n for n in range(len(layers) + 1) if layers_key(self.template, layers[:n]) in baked), default=-1)
        steps = [] if done >= 0 else base_steps(self.template)[1:]  # root_step made the directories
        steps += [layer_command(self.template, layer) for layer in layers[max(done, 0) :]]
        for step in steps:
            result = await self._run(step, timeout=900)
            if not result.ok:
                raise SandboxStartupError(f"replaying {step!r} on E2B failed:\n{result.output[-2000:]}")

    async def _extend(self, seconds: float) -> None:
        if self.sbx is None:
            raise SandboxGoneError("the E2B sandbox was let go")
        try:
            await self.sbx.set_timeout(int(seconds))
        except (_sdk().SandboxException, _sdk().AuthenticationException) as exc:
            raise self._fault(exc, "extending its lifetime") from exc

    async def reconnect(self, sandbox_id: str, layers: Sequence[Layer]) -> bool:
        sdk = _sdk()
        try:
            self.sbx = await sdk.AsyncSandbox.connect(sandbox_id, timeout=ACTIVE_LIFETIME)
        except sdk.AuthenticationException as exc:
            raise SandboxAuthError(f"E2B rejected E2B_API_KEY: {exc}") from exc
        except sdk.SandboxException:
            return False  # gone (expired, killed): the caller builds a new one
        self._extended = remote.clock()
        self.with_layers(layers)
        return True

    async def park(self, idle: float) -> None:
        sbx, self.sbx = self.sbx, None
        if sbx is not None:
            try:
                await sbx.set_timeout(int(idle))
            except (_sdk().SandboxException, _sdk().AuthenticationException):
                pass  # gone already (or out of reach): the resume builds a new one

    async def _drop(self) -> None:
        await self.close()

    async def close(self) -> None:
        sbx, self.sbx = self.sbx, None
        if sbx is not None:
            try:
                await sbx.kill()
            except (_sdk().SandboxException, _sdk().AuthenticationException):
                pass  # already gone: E2B ends it at the end of its lifetime anyway

    # --- files -------------------------------------------------------------
    async def _write(self, path: str, content: str) -> None:
        try:
            await self.sbx.files.write(remote_path(self.template, path), content, user=USER)
        except (_sdk().SandboxException, _sdk().AuthenticationException) as exc:
            raise self._fault(exc, f"writing {path}") from exc

    async def _read(self, path: str) -> str:
        return (await self._read_bytes(path, cap=False)).decode()

    async def _delete(self, path: str) -> None:
        try:
            await self.sbx.files.remove(remote_path(self.template, path), user=USER)
        except _sdk().FileNotFoundException:
            pass
        except (_sdk().SandboxException, _sdk().AuthenticationException) as exc:
            raise self._fault(exc, f"deleting {path}") from exc

    # --- the project part of the workspace -----------------------------------
    async def _list(self) -> list[ProjectEntry]:
        return parse_listing(self.template, await self._run(listing_command(self.template), timeout=120))

    async def _read_bytes(self, path: str, cap: bool = True) -> bytes:
        try:
            data = await self.sbx.files.read(remote_path(self.template, path), format="bytes", user=USER)
        except _sdk().FileNotFoundException:
            raise FileNotFoundError(path) from None
        except (_sdk().SandboxException, _sdk().AuthenticationException) as exc:
            raise self._fault(exc, f"reading {path}") from exc
        if cap and len(data) > FILE_CAP:
            raise TooLarge(f"{path} holds more than the {FILE_CAP} bytes read back")
        return bytes(data)

    async def _remove(self, path: str) -> None:
        result = await self._run(remove_command(self.template, path), timeout=60, at="/")
        if not result.ok:
            raise SandboxError(f"E2B could not remove {path}:\n{result.output[-2000:]}")

    # --- commands ------------------------------------------------------------
    async def _exec(self, command, *, timeout: float, cwd: str | None, env: dict[str, str] | None) -> ExecResult:
        return await self._run(command, timeout=timeout, cwd=cwd, env=env)

    async def _run(
        self,
        command: str | Sequence[str],
        *,
        timeout: float,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str = USER,
        at: str | None = None,
    ) -> ExecResult:
        """Run a command as ``user`` in the workspace (or in the absolute directory ``at``).

        It runs in the background so that devlooper holds its handle: at ``timeout`` the
        command is killed (not left to run into the next one), and any timeout the SDK
        reports is then the service's, never the command's."""
        sdk = _sdk()
        if self.sbx is None:
            raise SandboxGoneError("the E2B sandbox was let go")
        out, err = BoundedBuffer(OUTPUT_CAP), BoundedBuffer(OUTPUT_CAP)
        started = time.monotonic()
        timed_out, exit_code = False, 0
        try:
            # Output is streamed into bounded buffers; retain_output=False keeps the SDK from
            # holding a second, unbounded copy.
            handle = await self.sbx.commands.run(
                shell(command, self.template),
                background=True,
                envs=command_env(self.template, env),
                user=user,
                cwd=at or remote_cwd(self.template, cwd),
                on_stdout=lambda s: out.write(s.encode()),
                on_stderr=lambda s: err.write(s.encode()),
                timeout=timeout + KILL_GRACE,
                retain_output=False,
            )
            try:
                result = await asyncio.wait_for(handle.wait(), timeout)
                exit_code = result.exit_code
            except sdk.CommandExitException as exc:
                exit_code = exc.exit_code  # a non-zero exit is data
            except asyncio.TimeoutError:
                timed_out, exit_code = True, 124
                await handle.kill()
        except (sdk.SandboxException, sdk.AuthenticationException) as exc:
            raise self._fault(exc, "running a command") from exc
        return ExecResult(
            exit_code=exit_code,
            stdout=out.text(),
            stderr=err.text(),
            timed_out=timed_out,
            killed="timeout" if timed_out else None,
            truncated=bool(out.dropped or err.dropped),
            dropped=out.dropped + err.dropped,
            duration=time.monotonic() - started,
        )

    async def _add_layer(self, layer: Layer, *, timeout: float) -> ExecResult:
        result = await self._run(self.layer_command(layer), timeout=timeout)
        if result.ok:
            self.layers = [*self.layers, layer]
        return result


__all__ = ["E2BSandbox", "REMOTE_ENV", "dockerfile", "template_name"]


if __name__ == "__main__":  # python -m devlooper.sandboxes.e2b TEMPLATE > e2b.Dockerfile
    import sys

    from ..templates import get_template

    sys.stdout.write(dockerfile(get_template(sys.argv[1] if len(sys.argv) > 1 else "python")))
