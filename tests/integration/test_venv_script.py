"""tools/venv.sh, which `make demo`, `make test` and the ordinary-user CI run install with:
uv where it can be had, pip where it cannot, constraints.txt the lock either way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "venv.sh"
# The base interpreter, as `make` uses: not a venv inside this test run's venv.
PYTHON = str(Path(os.path.realpath(sys.base_prefix)) / "bin" / "python3")
PACKAGE = "mdurl"  # small, pure Python, pinned in constraints.txt


def pinned(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.split("==", 1)[1]
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def make_venv(tmp_path: Path, **env: str) -> tuple[Path, subprocess.CompletedProcess]:
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["sh", str(SCRIPT), str(venv), PACKAGE],
        env={**os.environ, "PYTHON": PYTHON, "HOME": str(tmp_path / "home"), **env},
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return venv, done


def installed(venv: Path, name: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    return subprocess.run([venv / "bin" / "python", "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_uv_installs_the_pinned_versions_and_leaves_pip_in_the_venv(tmp_path: Path):
    venv, done = make_venv(tmp_path)
    assert (venv / "bin" / "uv").exists(), done.stderr
    assert installed(venv, "uv") == pinned("uv")
    assert installed(venv, PACKAGE) == pinned(PACKAGE)
    assert (venv / "bin" / "pip").exists()  # for whoever adds an extra later


def test_without_uv_pip_installs_the_same_pins(tmp_path: Path):
    refuse = tmp_path / "no-uv.txt"
    refuse.write_text("uv<0\n")  # no uv release satisfies this: as where uv cannot be had
    venv, done = make_venv(tmp_path, PIP_CONSTRAINT=str(refuse))
    assert "installing with pip" in done.stderr
    assert not (venv / "bin" / "uv").exists()
    assert installed(venv, PACKAGE) == pinned(PACKAGE)
    assert (venv / "bin" / "pip").exists()
