"""Cargo.toml follows the environment's deps crate: merged, formatting kept, paths absolute."""

from __future__ import annotations

import tomllib

import pytest
from tomlkit.exceptions import TOMLKitError

from devlooper.cargo_manifest import cargo_dependencies, merge_dependencies
from devlooper.manifest import build_manifest
from devlooper.sandboxes.base import ExecResult
from devlooper.templates import get_template

PROJECT = """\
[package]
name = "app"   # the crate the model writes
version = "0.1.0"
edition = "2021"

[dependencies]
# written by the model
itoa = "1"

[features]
default = []
"""
# What `cargo add` leaves in $DEVLOOPER_ENV/deps/Cargo.toml (its paths are relative to that directory).
DEPS = """\
[package]
name = "devlooper-deps"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
helper = { version = "0.2.0", path = "../../work/crates/helper" }
serde = { version = "1.0.200", features = ["derive"] }

[dev-dependencies]
tempfile = "3"
"""


def test_dependencies_are_added_and_the_project_keeps_its_text():
    merged = merge_dependencies(PROJECT, DEPS, "/env/deps")
    assert merged == """\
[package]
name = "app"   # the crate the model writes
version = "0.1.0"
edition = "2021"

[dependencies]
# written by the model
itoa = "1"
helper = { version = "0.2.0", path = "/work/crates/helper" }
serde = { version = "1.0.200", features = ["derive"] }

[features]
default = []

[dev-dependencies]
tempfile = "3"
"""


def test_merging_again_changes_nothing():
    merged = merge_dependencies(PROJECT, DEPS, "/env/deps")
    assert merge_dependencies(merged, DEPS, "/env/deps") == merged


def test_the_environment_wins_over_the_projects_own_entry():
    project = PROJECT.replace('itoa = "1"', 'serde = "0.9"')
    data = tomllib.loads(merge_dependencies(project, DEPS, "/env/deps"))
    assert data["dependencies"]["serde"] == {"version": "1.0.200", "features": ["derive"]}


def test_a_project_without_dependencies_gets_the_table():
    data = tomllib.loads(merge_dependencies('[package]\nname = "app"\nversion = "0.1.0"\n', DEPS, "/env/deps"))
    assert set(data["dependencies"]) == {"helper", "serde"}


def test_relative_paths_resolve_where_cargo_saw_the_deps_crate():
    # Without bubblewrap the environment is a cache directory; cargo wrote the path relative to it.
    deps = DEPS.replace("../../work/crates/helper", "../../../../work/crates/helper")
    data = tomllib.loads(merge_dependencies(PROJECT, deps, "/var/cache/devlooper/envs/plain/abc/deps"))
    assert data["dependencies"]["helper"]["path"] == "/var/cache/devlooper/work/crates/helper"
    absolute = DEPS.replace("../../work/crates/helper", "/srv/helper")
    assert tomllib.loads(merge_dependencies(PROJECT, absolute, "/env/deps"))["dependencies"]["helper"]["path"] == (
        "/srv/helper"
    )


def test_invalid_toml_raises():
    with pytest.raises(TOMLKitError):
        merge_dependencies("[package\n", DEPS, "/env/deps")


class EnvOnly:
    """The two things the builder asks of a sandbox: an environment file and $DEVLOOPER_ENV."""

    def __init__(self, deps: str | None, env_dir: str = "/env") -> None:
        self.deps, self.env_dir = deps, env_dir

    async def read_env_file(self, path: str) -> str:
        if path != "deps/Cargo.toml" or self.deps is None:
            raise FileNotFoundError(path)
        return self.deps

    async def exec(self, command, *, timeout: float, **_) -> ExecResult:
        assert command == ["sh", "-c", 'printf %s "$DEVLOOPER_ENV"']
        return ExecResult(0, stdout=self.env_dir)


async def test_the_rust_builder_writes_cargo_toml_only_when_it_changes():
    template = get_template("rust")
    files = {"Cargo.toml": PROJECT, "src/lib.rs": ""}
    changed = await build_manifest(EnvOnly(DEPS), template, files)
    assert list(changed) == ["Cargo.toml"]
    assert tomllib.loads(changed["Cargo.toml"])["dependencies"]["helper"]["path"] == "/work/crates/helper"
    assert await build_manifest(EnvOnly(DEPS), template, changed) == {}


async def test_the_rust_builder_leaves_what_it_cannot_merge():
    template = get_template("rust")
    assert await cargo_dependencies(EnvOnly(None), template, {"Cargo.toml": PROJECT}) == {}  # no deps crate
    assert await cargo_dependencies(EnvOnly(DEPS), template, {"Cargo.toml": "[package\n"}) == {}  # test run says why


async def test_a_deleted_cargo_toml_is_rebuilt_from_the_templates():
    template = get_template("rust")
    rebuilt = await cargo_dependencies(EnvOnly(DEPS), template, {"src/lib.rs": ""})
    data = tomllib.loads(rebuilt["Cargo.toml"])
    assert data["package"]["name"] == "app" and "helper" in data["dependencies"]


async def test_nothing_installed_leaves_the_project_alone():
    empty = DEPS.split("[dependencies]")[0] + "[dependencies]\n"
    assert await cargo_dependencies(EnvOnly(empty), get_template("rust"), {"Cargo.toml": "[package\n"}) == {}
