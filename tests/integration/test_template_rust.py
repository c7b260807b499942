"""The rust template for real: a scripted model, the local sandbox (bubblewrap
and the plain fallback), the host's cargo, no crates.io.

Installs use local path crates the tests create, declared in the template
(``local_packages``) and named by the model, so they need no registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import tomlkit
import tomllib

from devlooper.sandboxes import bwrap
from devlooper.sandboxes.base import SandboxSpec, SandboxStartupError
from devlooper.sandboxes.local import LocalSandbox
from devlooper.templates import get_template
from tests.conftest import run_scripted

pytestmark = pytest.mark.skipif(shutil.which("cargo") is None, reason="the rust template needs cargo (rustup)")

ISOLATIONS = [
    pytest.param("bwrap", id="bwrap", marks=pytest.mark.skipif(not bwrap.usable()[0], reason=bwrap.usable()[1])),
    pytest.param("none", id="plain"),
]

PLAN = {
    "notes": "a library with unit and integration tests",
    "files": [{"path": "src/lib.rs", "purpose": "area()"}, {"path": "tests/api.rs", "purpose": "public API tests"}],
    "packages": [],
}
LIB = """\
pub fn area(w: u32, h: u32) -> u32 {
    w * h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square() {
        assert_eq!(area(3, 3), 9);
    }

    #[test]
    fn rectangle() {
        assert_eq!(area(2, 5), 10, "2 by 5");
    }
}
"""
API_TESTS = """\
#[test]
fn zero_width() {
    assert_eq!(app::area(0, 7), 0);
}
"""
BROKEN = LIB.replace("w * h", "w + h")
NOT_COMPILING = LIB.replace("    w * h\n", '    w * "h"\n')
FIX = {"summary": "area multiplies", "actions": [{"kind": "fix_file", "path": "src/lib.rs", "instructions": "w * h"}]}


def replies(lib: str, **more) -> dict:
    return {"plan_project": PLAN, "generate_file:src/lib.rs": lib, "generate_file:tests/api.rs": API_TESTS, **more}


@pytest.fixture(params=ISOLATIONS)
def isolation(request, monkeypatch) -> str:
    monkeypatch.setenv("DEVLOOPER_ISOLATION", request.param)
    return request.param


async def test_a_good_crate_is_green_at_the_first_run(isolation: str, output_dir: Path):
    state = await run_scripted(replies(LIB), template="rust", output_dir=str(output_dir))
    assert state["status"] == "passed" and state["iteration"] == 1
    [run] = state["test_runs"]
    assert (run["exit_code"], run["passed"], run["failed"]) == (0, 3, 0)  # 2 unit tests, 1 integration test
    assert (output_dir / "src" / "lib.rs").read_text() == LIB
    assert tomllib.loads((output_dir / "Cargo.toml").read_text())["package"]["name"] == "app"
    assert not (output_dir / "target").exists()  # builds stay in the sandbox's private /tmp
    report = json.loads((output_dir / ".devlooper" / "report.json").read_text())
    assert report["status"] == "passed" and report["template"] == "rust"


async def test_a_broken_crate_is_red_with_each_failure_then_fixed(isolation: str, output_dir: Path):
    state = await run_scripted(
        replies(BROKEN, **{"diagnose:1": "area adds", "plan:1": FIX, "fix_file:1:src/lib.rs": f"```rust\n{LIB}```"}),
        template="rust",
        output_dir=str(output_dir),
    )
    assert state["status"] == "passed" and state["iteration"] == 2
    first, second = state["test_runs"]
    assert (first["exit_code"], first["passed"], first["failed"]) == (101, 0, 3)
    failures = {f["name"]: f["message"] for f in first["failures"]}
    assert set(failures) == {"src/lib.rs::tests::square", "src/lib.rs::tests::rectangle", "tests/api.rs::zero_width"}
    assert "panicked at src/lib.rs:16:9" in failures["src/lib.rs::tests::rectangle"]
    assert "assertion `left == right` failed: 2 by 5\n  left: 7\n right: 10" in failures["src/lib.rs::tests::rectangle"]
    assert "left: 7\n right: 0" in failures["tests/api.rs::zero_width"]
    assert (second["exit_code"], second["passed"], second["failed"]) == (0, 3, 0)
    [edit] = state["edits"]
    assert edit["path"] == "src/lib.rs" and "+    w * h" in edit["diff"]


async def test_a_compile_error_is_a_failure(output_dir: Path):
    state = await run_scripted(
        replies(NOT_COMPILING, **{"diagnose:1": "a str times a number", "plan:1": FIX, "fix_file:1:src/lib.rs": LIB}),
        template="rust",
        output_dir=str(output_dir),
    )
    assert state["status"] == "passed" and state["iteration"] == 2
    first = state["test_runs"][0]
    assert (first["exit_code"], first["passed"], first["failed"]) == (101, 0, 1)
    [failure] = first["failures"]
    assert failure["name"] == "(build) src/lib.rs"
    assert failure["message"].startswith("error[E0277]: cannot multiply `u32` by `&str`")


def make_crate(parent: Path, name: str, body: str) -> Path:
    """A local crate for path installs: no registry needed."""
    crate = parent / name
    (crate / "src").mkdir(parents=True)
    manifest = f'[package]\nname = "{name}"\nversion = "0.2.0"\nedition = "2021"\n\n[dependencies]\n'
    (crate / "Cargo.toml").write_text(manifest)
    (crate / "src" / "lib.rs").write_text(body)
    return crate


USES_HELPER = LIB.replace("    w * h\n", "    helper::times(w, h)\n")


def declaring(folder: Path, name: str, **packages: Path) -> Path:
    """The rust template with host paths declared by the user: the only ones the sandbox sees."""
    data = get_template("rust").model_dump(mode="json", exclude_none=True)
    data["name"] = name
    data["local_packages"] = {key: str(path) for key, path in packages.items()}
    path = folder / f"{name}.toml"
    path.write_text(tomlkit.dumps(data))
    return path


# tmp_path is under /tmp, which bubblewrap replaces with the sandbox's own: the
# crate is reachable inside only because the template declares it.
async def test_an_installed_path_crate_lands_in_cargo_toml_and_the_output_stands_alone(
    isolation: str, tmp_path: Path, output_dir: Path
):
    helper = make_crate(tmp_path / "crates", "helper", "pub fn times(a: u32, b: u32) -> u32 {\n    a * b\n}\n")
    plan = {"summary": "add the helper crate", "actions": [{"kind": "install", "packages": ["helper"]}]}
    state = await run_scripted(
        replies(USES_HELPER, **{"diagnose:1": "helper is not a dependency", "plan:1": plan}),
        template=str(declaring(tmp_path, "rust-helper", helper=helper)),
        output_dir=str(output_dir),
    )
    assert state["status"] == "passed" and state["iteration"] == 2
    assert state["test_runs"][0]["failures"][0]["name"] == "(build) src/lib.rs"  # unresolved crate `helper`
    [layer] = state["layers"]
    assert layer == {"kind": "install", "spec": "helper", "iteration": 1}
    manifest = (output_dir / "Cargo.toml").read_text()
    assert tomllib.loads(manifest)["dependencies"] == {"helper": {"version": "0.2.0", "path": str(helper)}}
    assert manifest.startswith('[package]\nname = "app"\n')  # the template's file, extended in place
    assert [e["path"] for e in state["edits"]] == ["Cargo.toml"]  # an edit like any other

    # The output alone builds and passes on this machine: copy it and test it offline.
    copy = tmp_path / "elsewhere"
    shutil.copytree(output_dir, copy)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_TARGET")}
    done = subprocess.run(
        ["cargo", "test", "--offline"], cwd=copy, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test result: ok. 2 passed" in done.stdout and "test result: ok. 1 passed" in done.stdout


async def test_a_crate_the_project_plan_asks_for_is_installed_before_the_first_run(
    tmp_path: Path, output_dir: Path
):
    helper = make_crate(tmp_path / "crates", "helper", "pub fn times(a: u32, b: u32) -> u32 {\n    a * b\n}\n")
    state = await run_scripted(
        {**replies(USES_HELPER), "plan_project": {**PLAN, "packages": ["helper"]}},
        template=str(declaring(tmp_path, "rust-helper", helper=helper)),
        output_dir=str(output_dir),
    )
    assert state["status"] == "passed" and state["iteration"] == 1
    assert tomllib.loads((output_dir / "Cargo.toml").read_text())["dependencies"]["helper"]["path"] == str(helper)


@pytest.fixture
def local_registry(tmp_path: Path):
    """A cargo registry on disk holding one crate, tally 0.3.1: crates.io stands in for it.

    It lives under /var/tmp, which the sandbox sees only because the template declares it."""
    if not os.path.isdir("/var/tmp"):
        pytest.skip("no /var/tmp for a registry the sandbox can read")
    crate = make_crate(tmp_path, "tally", "pub fn count(s: &str) -> usize {\n    s.chars().count()\n}\n")
    cargo_toml = crate / "Cargo.toml"
    cargo_toml.write_text(cargo_toml.read_text().replace('version = "0.2.0"', 'version = "0.3.1"\nlicense = "MIT"'))
    subprocess.run(
        ["cargo", "package", "--no-verify", "--allow-dirty", "--offline", "--quiet"], cwd=crate, check=True, timeout=120
    )
    registry = Path(tempfile.mkdtemp(prefix="devlooper-registry-", dir="/var/tmp"))
    os.chmod(registry, 0o755)
    archive = registry / "tally-0.3.1.crate"
    shutil.copy(crate / "target" / "package" / archive.name, archive)
    entry = {"name": "tally", "vers": "0.3.1", "deps": [], "features": {}, "yanked": False}
    entry["cksum"] = hashlib.sha256(archive.read_bytes()).hexdigest()
    (registry / "index" / "ta" / "ll").mkdir(parents=True)
    (registry / "index" / "ta" / "ll" / "tally").write_text(json.dumps(entry) + "\n")
    for path in [registry, *registry.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield registry
    shutil.rmtree(registry, ignore_errors=True)


def mirror_template(folder: Path, registry: Path) -> Path:
    """The rust template whose cargo takes crates.io's crates from ``registry``: what a
    user template for a private mirror does."""
    data = get_template("rust").model_dump(mode="json", exclude_none=True)
    config = f'[source.crates-io]\\nreplace-with = "mirror"\\n\\n[source.mirror]\\nlocal-registry = "{registry}"\\n'
    data["name"] = "rust-mirror"
    data["local_packages"] = {"mirror": str(registry)}  # a host path the sandbox may read
    data["setup_commands"].append(f'mkdir -p "$CARGO_HOME" && printf \'{config}\' > "$CARGO_HOME/config.toml"')
    path = folder / "rust-mirror.toml"
    path.write_text(tomlkit.dumps(data))
    return path


async def test_a_registry_crate_is_fetched_into_the_environment_and_tests_run_offline(
    isolation: str, tmp_path: Path, output_dir: Path, local_registry: Path
):
    uses_tally = LIB.replace("    w * h\n", '    w * h + tally::count("") as u32\n')
    plan = {"summary": "add tally", "actions": [{"kind": "install", "packages": ["tally@0.3"]}]}
    state = await run_scripted(
        replies(uses_tally, **{"diagnose:1": "tally is not a dependency", "plan:1": plan}),
        template=str(mirror_template(tmp_path, local_registry)),
        output_dir=str(output_dir),
    )
    assert state["status"] == "passed" and state["iteration"] == 2
    # the second run read the crate from the environment's CARGO_HOME, read-only and offline
    assert "Compiling tally v0.3.1" in state["test_runs"][1]["output"]
    assert tomllib.loads((output_dir / "Cargo.toml").read_text())["dependencies"] == {"tally": "0.3"}


async def test_a_machine_without_cargo_is_told_when_the_sandbox_starts(isolation: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DEVLOOPER_CACHE_DIR", str(tmp_path / "cache"))  # the environment is built, not reused
    monkeypatch.setattr("devlooper.sandboxes.runtimes.tool_path", lambda template, env_dir: [])  # no cargo on PATH
    box = LocalSandbox(SandboxSpec(template=get_template("rust"), run_id="no-cargo"))
    with pytest.raises(SandboxStartupError, match=r"could not build the 'rust' environment: 'cargo --version'"):
        await box.start()
    assert box.root is None  # nothing left behind
