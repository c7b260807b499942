"""The python manifest of a whole run: what the environment holds, whatever installed it."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_scripted
from tests.integration.test_loop import ADDER_PLAN, USES_DEP, replies

OWN = "# the project's own line stays\ntomli>=2 ; python_version < '3.11'\n"

# A project script that builds a minimal wheel: the command installs what it builds, in the
# sandbox, offline (a host path named by a command is not visible in the sandbox).
BUILD_WHEEL = """import sys, zipfile
info = "tinydep-1.0.dist-info"
with zipfile.ZipFile(sys.argv[1] + "/tinydep-1.0-py3-none-any.whl", "w") as zf:
    zf.writestr("tinydep.py", "VALUE = 42\\n")
    zf.writestr(info + "/METADATA", "Metadata-Version: 2.1\\nName: tinydep\\nVersion: 1.0\\n")
    zf.writestr(info + "/WHEEL", "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
    zf.writestr(info + "/RECORD", "")
"""


async def test_a_package_installed_by_a_command_is_pinned(tmp_path: Path, output_dir: Path):
    command = (
        "python build_wheel.py \"$TMPDIR\" && python -m pip install --no-index --disable-pip-version-check "
        "\"$TMPDIR/tinydep-1.0-py3-none-any.whl\""
    )
    plan = {"summary": "install tinydep by hand", "actions": [{"kind": "command", "command": command}]}
    extra = [{"path": "requirements.txt", "purpose": "deps"}, {"path": "build_wheel.py", "purpose": "wheel"}]
    project = {**ADDER_PLAN, "files": [*ADDER_PLAN["files"], *extra]}
    state = await run_scripted(
        replies(USES_DEP, **{"plan_project": project, "generate_file:requirements.txt": OWN,
                             "generate_file:build_wheel.py": BUILD_WHEEL,
                             "diagnose:1": "tinydep is missing", "plan:1": plan}),
        output_dir=str(output_dir),
    )
    assert state["status"] == "passed"
    assert [layer["kind"] for layer in state["layers"]] == ["command"]  # no install layer names tinydep
    lines = (output_dir / "requirements.txt").read_text().splitlines()
    assert lines[:2] == OWN.splitlines()
    assert any(line.startswith("tinydep") for line in lines), lines  # pinned, or where it was installed from
    assert lines[2].startswith("pytest==")
    assert not any(line.startswith(("pip==", "pip @", "setuptools")) for line in lines)
    assert state["files"]["requirements.txt"] == (output_dir / "requirements.txt").read_text()
