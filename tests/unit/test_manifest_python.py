"""The python manifest: requirements.txt derived from what the environment holds."""

from __future__ import annotations

import json

from devlooper.manifest import build_manifest, python_requirements
from devlooper.sandboxes.base import ExecResult
from devlooper.templates import get_template

TEMPLATE = get_template("python")  # base_packages: pytest
BARE = [["pip", "24.0", None], ["setuptools", "65.5.0", None], ["wheel", "0.43.0", None]]
PYTEST = [["pytest", "8.3.4", None], ["iniconfig", "2.0.0", None], ["pluggy", "1.5.0", None]]


class Env:
    """Just what the builder uses of a sandbox: its layers and the listing of its packages."""

    def __init__(self, rows: list, layers: list | None = None, exit_code: int = 0) -> None:
        self.rows, self.layers, self.exit_code = rows, layers or [], exit_code

    async def list_environment(self, command: str, *, timeout: float) -> ExecResult:
        return ExecResult(exit_code=self.exit_code, stdout=json.dumps(self.rows) + "\n" if not self.exit_code else "")


def lines(out: dict[str, str]) -> list[str]:
    return out["requirements.txt"].splitlines()


async def test_a_package_a_command_installed_is_pinned():
    # No install layer names requests: a command (`pip install requests`) put it there.
    layers = [{"kind": "command", "spec": "pip install requests", "iteration": 1}]
    rows = [*BARE, *PYTEST, ["requests", "2.32.3", None], ["urllib3", "2.2.3", None]]
    assert lines(await python_requirements(Env(rows, layers), TEMPLATE, {})) == [
        "pytest==8.3.4", "iniconfig==2.0.0", "pluggy==1.5.0", "requests==2.32.3", "urllib3==2.2.3",
    ]


async def test_what_the_run_asked_for_comes_first_and_the_bare_environment_is_left_out():
    layers = [{"kind": "install", "spec": "Zope_Interface setuptools", "iteration": 1}]
    rows = [*BARE, *PYTEST, ["zope.interface", "7.1", None]]
    out = lines(await python_requirements(Env(rows, layers), TEMPLATE, {}))
    # asked for by name (in any spelling PEP 503 equates), setuptools is listed; pip and wheel are not
    assert out == ["pytest==8.3.4", "zope.interface==7.1", "setuptools==65.5.0", "iniconfig==2.0.0", "pluggy==1.5.0"]


async def test_the_projects_own_lines_stay_first_and_are_not_repeated():
    own = "# runtime\nnumpy>=1.26\n-e .\ntomli>=2 ; python_version < '3.11'\n"
    rows = [*BARE, *PYTEST, ["numpy", "2.1.0", None]]
    out = lines(await python_requirements(Env(rows), TEMPLATE, {"requirements.txt": own}))
    assert out[:4] == own.splitlines()
    assert out[4:] == ["pytest==8.3.4", "iniconfig==2.0.0", "pluggy==1.5.0"]


async def test_a_package_installed_from_a_url_or_a_checkout_says_where_from():
    rows = [*PYTEST, ["tinydep", "1.0", "file:///wheels/tinydep-1.0-py3-none-any.whl"],
            ["lib", "0.1", "git+https://example.org/lib.git@abc123"]]
    out = lines(await python_requirements(Env(rows), TEMPLATE, {}))
    assert "tinydep @ file:///wheels/tinydep-1.0-py3-none-any.whl" in out
    assert "lib @ git+https://example.org/lib.git@abc123" in out


async def test_an_environment_that_cannot_be_listed_still_gets_what_was_asked_for():
    layers = [{"kind": "install", "spec": "requests", "iteration": 1}]
    assert lines(await python_requirements(Env([], layers, exit_code=1), TEMPLATE, {})) == ["pytest", "requests"]


async def test_only_a_changed_manifest_is_an_edit():
    env = Env([*BARE, *PYTEST])
    first = await build_manifest(env, TEMPLATE, {})
    assert await build_manifest(env, TEMPLATE, first) == {}


def test_the_environment_listing_leaves_out_the_working_directory(tmp_path):
    """The workspace's own build metadata (an egg-info) is not one of the environment's
    packages, and a listing that reads only the environment can be kept with it."""
    import subprocess
    import sys

    from devlooper.manifest import FREEZE

    info = tmp_path / "myproject.egg-info"
    info.mkdir()
    (info / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: myproject\nVersion: 0.1\n")
    command = FREEZE.replace("python -c", f"{sys.executable} -c", 1)
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=True)
    names = {name.lower() for name, _, _ in json.loads(done.stdout)}
    assert "pytest" in names and "myproject" not in names
