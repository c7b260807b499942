"""The python manifest of a whole run: what the environment holds, whatever installed it."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_scripted
from tests.integration.test_loop import ADDER_PLAN, USES_DEP, make_wheel, replies

OWN = "# the project's own line stays\ntomli>=2 ; python_version < '3.11'\n"


async def test_a_package_installed_by_a_command_is_pinned(tmp_path: Path, output_dir: Path):
    wheel = make_wheel(tmp_path)
    command = f"python -m pip install --no-index --disable-pip-version-check {wheel}"
    plan = {"summary": "install tinydep by hand", "actions": [{"kind": "command", "command": command}]}
    project = {**ADDER_PLAN, "files": [*ADDER_PLAN["files"], {"path": "requirements.txt", "purpose": "deps"}]}
    state = await run_scripted(
        replies(USES_DEP, **{"plan_project": project, "generate_file:requirements.txt": OWN,
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
