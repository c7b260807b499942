"""The E2B backend (``e2b`` 2.x, ``AsyncSandbox``).

The sandbox starts from an E2B template: ``DEVLOOPER_E2B_TEMPLATE`` if set,
else E2B's ``base`` image, which has Python and Node. The template's setup,
its base packages and the run's layers are replayed on the fresh sandbox,
except those already baked into a custom E2B template: such a template
carries ``/etc/devlooper-env`` with the keys of the steps it contains (see
``dockerfile`` and docs/sandboxes.md). Layer steps run as
root; tests run as the unprivileged ``user``.

E2B decides network access when a sandbox is created, so on this backend the
network stays on while tests run (``layer_network=False`` turns it off for the
whole sandbox).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from types import ModuleType

from ..bounded import BoundedBuffer
from ..errors import ConfigError
from ..layers import Layer
from ..templates.base import EnvTemplate
from .base import ExecResult, ProjectEntry, Sandbox, SandboxError, SandboxSpec, SandboxStartupError, layers_key
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

DEFAULT_TEMPLATE = "base"
MARKER = "/etc/devlooper-env"  # keys of the environments baked into a custom E2B template
LIFETIME = 3600  # seconds the sandbox lives at most (E2B kills it afterwards)
TEST_USER, ROOT = "user", "root"


def _sdk() -> ModuleType:
    try:
        import e2b
    except ImportError:
        raise ConfigError("the e2b sandbox needs its SDK: pip install 'devlooper[e2b]'") from None
    return e2b


def e2b_template_name() -> str:
    return os.environ.get("DEVLOOPER_E2B_TEMPLATE") or DEFAULT_TEMPLATE


def dockerfile(template: EnvTemplate, layers: Sequence[Layer] = ()) -> str:
    """A Dockerfile for a custom E2B template with the environment (and ``layers``) baked in.

    Build it with ``e2b template build -n NAME -d e2b.Dockerfile`` and run
    devlooper with ``DEVLOOPER_E2B_TEMPLATE=NAME``.
    """
    keys = [layers_key(template, layers[:n]) for n in range(len(layers) + 1)]
    steps = base_steps(template) + [layer_command(template, layer) for layer in layers]
    lines = [f"FROM {template.image}", "ENV " + " ".join(f"{k}={v}" for k, v in REMOTE_ENV.items())]
    lines += [f"RUN {step}" for step in steps]
    lines += [f"RUN mkdir -p {template.workdir} && printf '%s\\n' {' '.join(keys)} > {MARKER}"]
    lines += [f"WORKDIR {template.workdir}"]
    return "\n".join(lines) + "\n"


class E2BSandbox(Sandbox):
    name = "e2b"

    def __init__(self, spec: SandboxSpec) -> None:
        super().__init__(spec)
        self.sbx = None

    @classmethod
    def check_config(cls, ctx: object = None) -> None:
        _sdk()
        if not os.environ.get("E2B_API_KEY"):
            raise ConfigError("the e2b sandbox needs E2B_API_KEY (create one at https://e2b.dev/dashboard)")

    # --- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        sdk = _sdk()
        try:
            self.sbx = await sdk.AsyncSandbox.create(
                template=e2b_template_name(),
                timeout=LIFETIME,
                metadata={"devlooper_run": self.spec.run_id[:64]},
                allow_internet_access=self.spec.layer_network,
            )
        except sdk.AuthenticationException as exc:
            raise ConfigError(f"E2B rejected E2B_API_KEY: {exc}") from exc
        except sdk.SandboxException as exc:
            raise SandboxStartupError(f"could not create an E2B sandbox: {exc}") from exc
        try:
            await self._prepare()
        except BaseException:
            await self.close()
            raise

    async def _prepare(self) -> None:
        wd = self.template.workdir
        result = await self._run(f"mkdir -p {wd} && chown {TEST_USER}: {wd}", timeout=60, user=ROOT, at="/")
        if not result.ok:
            raise SandboxStartupError(f"could not create {wd} in the E2B sandbox:\n{result.output}")
        baked = await self._baked_keys()
        layers = list(self.spec.layers)
        done = max((n for n in range(len(layers) + 1) if layers_key(self.template, layers[:n]) in baked), default=-1)
        steps = [] if done >= 0 else base_steps(self.template)
        steps += [layer_command(self.template, layer) for layer in layers[max(done, 0) :]]
        for step in steps:
            result = await self._run(step, timeout=900, user=ROOT)
            if not result.ok:
                raise SandboxStartupError(f"replaying {step!r} on E2B failed:\n{result.output[-2000:]}")
        self.layers = layers

    async def _baked_keys(self) -> set[str]:
        result = await self._run(f"cat {MARKER} 2>/dev/null || true", timeout=30, user=ROOT, at="/")
        return set(result.stdout.split())

    async def close(self) -> None:
        sbx, self.sbx = self.sbx, None
        if sbx is not None:
            try:
                await sbx.kill()
            except _sdk().SandboxException:
                pass  # already gone: E2B kills it at the end of its lifetime anyway

    # --- files -------------------------------------------------------------
    async def write_file(self, path: str, content: str) -> None:
        try:
            await self.sbx.files.write(remote_path(self.template, path), content, user=TEST_USER)
        except _sdk().SandboxException as exc:
            raise SandboxError(f"E2B could not write {path}: {exc}") from exc

    async def read_file(self, path: str) -> str:
        try:
            return await self.sbx.files.read(remote_path(self.template, path), format="text", user=TEST_USER)
        except _sdk().NotFoundException:
            raise FileNotFoundError(path) from None
        except _sdk().SandboxException as exc:
            raise SandboxError(f"E2B could not read {path}: {exc}") from exc

    async def delete_file(self, path: str) -> None:
        try:
            await self.sbx.files.remove(remote_path(self.template, path), user=TEST_USER)
        except _sdk().NotFoundException:
            pass
        except _sdk().SandboxException as exc:
            raise SandboxError(f"E2B could not delete {path}: {exc}") from exc

    # --- the project part of the workspace -----------------------------------
    # As root: a layer step (root) may have left files the test user cannot read.
    async def list_project(self) -> list[ProjectEntry]:
        return parse_listing(self.template, await self._run(listing_command(self.template), timeout=120, user=ROOT))

    async def read_project_bytes(self, path: str) -> bytes:
        try:
            data = await self.sbx.files.read(remote_path(self.template, path), format="bytes", user=ROOT)
        except _sdk().NotFoundException:
            raise FileNotFoundError(path) from None
        except _sdk().SandboxException as exc:
            raise SandboxError(f"E2B could not read {path}: {exc}") from exc
        if len(data) > FILE_CAP:
            raise TooLarge(f"{path} holds more than the {FILE_CAP} bytes read back")
        return bytes(data)

    async def remove_entry(self, path: str) -> None:
        result = await self._run(remove_command(self.template, path), timeout=60, user=ROOT, at="/")
        if not result.ok:
            raise SandboxError(f"E2B could not remove {path}:\n{result.output[-2000:]}")

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
        return await self._run(command, timeout=timeout, cwd=cwd, env=env, user=TEST_USER)

    async def _run(
        self,
        command: str | Sequence[str],
        *,
        timeout: float,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str = TEST_USER,
        at: str | None = None,
    ) -> ExecResult:
        """Run a command as ``user`` in the workspace (or in the absolute directory ``at``)."""
        sdk = _sdk()
        out, err = BoundedBuffer(OUTPUT_CAP), BoundedBuffer(OUTPUT_CAP)
        started = time.monotonic()
        timed_out, exit_code = False, 0
        try:
            # Output is streamed into bounded buffers; retain_output=False keeps the SDK from
            # holding a second, unbounded copy.
            result = await self.sbx.commands.run(
                shell(command),
                envs={**REMOTE_ENV, **(env or {})},
                user=user,
                cwd=at or remote_cwd(self.template, cwd),
                on_stdout=lambda s: out.write(s.encode()),
                on_stderr=lambda s: err.write(s.encode()),
                timeout=timeout,
                retain_output=False,
            )
            exit_code = result.exit_code
        except sdk.CommandExitException as exc:
            exit_code = exc.exit_code  # a non-zero exit is data
        except sdk.TimeoutException:
            timed_out, exit_code = True, 124
        except sdk.SandboxException as exc:
            raise SandboxError(f"E2B command failed: {exc}") from exc
        except asyncio.TimeoutError:
            timed_out, exit_code = True, 124
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

    async def add_layer(self, layer: Layer, *, timeout: float) -> ExecResult:
        result = await self._run(self.layer_command(layer), timeout=timeout, user=ROOT)
        # What the step (root) wrote in the project must stay writable by the test user,
        # and by the harness that rewrites it from the state (chown -R follows no link).
        await self._run(f"chown -R {TEST_USER}: {self.template.workdir}", timeout=120, user=ROOT, at="/")
        if result.ok:
            self.layers = [*self.layers, layer]
        return result


if __name__ == "__main__":  # python -m devlooper.sandboxes.e2b TEMPLATE > e2b.Dockerfile
    import sys

    from ..templates import get_template

    sys.stdout.write(dockerfile(get_template(sys.argv[1] if len(sys.argv) > 1 else "python")))
