"""How the local backend isolates each template runtime on this machine.

Remote backends get the toolchain from the template's image; locally, each
runtime needs an environment directory of its own (a venv for python) and the
variables that point its tools at it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..templates.base import EnvTemplate


def create_command(template: EnvTemplate, env_dir: Path) -> list[str] | None:
    """The command that creates an empty environment at ``env_dir`` (None: just a directory)."""
    if template.runtime == "python":
        # The base interpreter, not devlooper's own venv: a venv under /tmp (a fresh
        # clone there) is out of bubblewrap's sight, which gives the sandbox its own /tmp.
        return [os.path.realpath(sys.executable), "-m", "venv", str(env_dir)]
    return None


def tool_path(template: EnvTemplate, env_dir: Path) -> list[str]:
    """Directories to put first on PATH: the environment's, then the host toolchains'."""
    dirs = [str(env_dir / "bin")] if template.runtime == "python" else []
    for tool in ("node", "npm", "cargo", "go"):
        found = shutil.which(tool)
        if found and str(Path(found).parent) not in dirs:
            dirs.append(str(Path(found).parent))
    return dirs


def env_vars(template: EnvTemplate, env_dir: Path, tmp: str | None = None) -> dict[str, str]:
    """Variables that make the runtime's tools use ``env_dir`` (and ``tmp``, the
    sandbox's private temporary directory, for what may change while tests run)."""
    if template.runtime == "python":
        return {"VIRTUAL_ENV": str(env_dir)}
    if template.runtime == "node":
        # No NODE_PATH: the workspace's node_modules links into env_dir, so node
        # resolves packages as in any project. No update check: it would wait on
        # the network, which tests do not have.
        return {"npm_config_update_notifier": "false", **_npm_trust(), **_node_options()}
    if template.runtime == "rust":
        return rust_vars(env_dir, tmp)
    return {}


WASM_FLAG = "--disable-wasm-trap-handler"


@functools.cache
def _node_options() -> dict[str, str]:
    """Let WebAssembly work under the sandbox's address-space limit.

    With its trap handler V8 reserves about 10 GB of address space per wasm
    memory, more than ``Limits.address_space_mb`` allows, so Jest (through
    es-module-lexer) fails with "Cannot allocate Wasm memory"; without it V8
    checks bounds instead. Older nodes reject the flag, so ask first."""
    node = shutil.which("node")
    if not node:
        return {}
    probe = f"process.exit(process.allowedNodeEnvironmentFlags.has({WASM_FLAG!r}) ? 0 : 1)"
    try:
        ok = subprocess.run([node, "-e", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return {"NODE_OPTIONS": WASM_FLAG} if ok else {}


def _npm_trust() -> dict[str, str]:
    """The host's npm global config and extra CAs, which a cleared environment loses.

    ``npm install --prefix DIR`` looks for its global config under DIR, not
    beside node: a registry mirror or a proxy's CA named there (``cafile``)
    would be ignored and every fetch fail on the certificate. Neither is a
    secret (the user's ~/.npmrc, which may hold tokens, is not passed)."""
    out = {}
    node = shutil.which("node")
    if node:
        config = Path(node).resolve().parent.parent / "etc" / "npmrc"
        if config.is_file():
            out["npm_config_globalconfig"] = str(config)
    extra = os.environ.get("NODE_EXTRA_CA_CERTS")
    if extra and os.path.isfile(extra):
        out["NODE_EXTRA_CA_CERTS"] = extra
    return out


def rust_vars(env_dir: Path, tmp: str | None) -> dict[str, str]:
    # Downloaded crates belong to the environment: they are what installs added.
    found = {"CARGO_HOME": str(env_dir / "cargo")}
    # HOME is private in the sandbox: without this, rustup's proxies find no toolchain.
    rustup = os.environ.get("RUSTUP_HOME") or str(Path.home() / ".rustup")
    if Path(rustup).is_dir():
        found["RUSTUP_HOME"] = rustup
    if tmp:  # writable while tests run, and kept across the iterations of one sandbox: builds are incremental
        found["CARGO_TARGET_DIR"] = f"{tmp}/cargo-target"
    return found
