"""How the local backend isolates each template runtime on this machine.

Remote backends get the toolchain from the template's image; locally, each
runtime needs an environment directory of its own (a venv for python) and the
variables that point its tools at it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..templates.base import EnvTemplate


def create_command(template: EnvTemplate, env_dir: Path) -> list[str] | None:
    """The command that creates an empty environment at ``env_dir`` (None: just a directory)."""
    if template.runtime == "python":
        return [sys.executable, "-m", "venv", str(env_dir)]
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
    if template.runtime == "rust":
        return rust_vars(env_dir, tmp)
    return {}


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
