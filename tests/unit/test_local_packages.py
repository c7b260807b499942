"""Local packages: declared by the user in the template, named by the model, keyed by content."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from devlooper.sandboxes.base import SandboxSpec
from devlooper.sandboxes.local import LocalSandbox, local_packages_digest
from devlooper.templates import get_template


def crate(parent: Path, name: str = "helper") -> Path:
    path = parent / name
    (path / "src").mkdir(parents=True)
    (path / "Cargo.toml").write_text(f'[package]\nname = "{name}"\n')
    (path / "src" / "lib.rs").write_text("pub fn one() -> u32 { 1 }\n")
    return path


def with_packages(name: str, packages: dict[str, str]):
    data = get_template(name).model_dump()
    return get_template(name).model_validate({**data, "local_packages": packages})


def test_an_install_names_a_declared_package_and_gets_its_path_in_the_runtimes_form(tmp_path):
    helper = crate(tmp_path)
    rust = LocalSandbox(SandboxSpec(template=with_packages("rust", {"helper": str(helper)})), isolation="none")
    command = rust.layer_command({"kind": "install", "spec": "helper serde", "iteration": 1})
    assert f"--path {helper} serde" in command
    python = LocalSandbox(SandboxSpec(template=with_packages("python", {"mylib": str(helper)})), isolation="none")
    assert f"install --disable-pip-version-check --no-input {helper}" in python.layer_command(
        {"kind": "install", "spec": "mylib", "iteration": 1}
    )


def test_only_declared_packages_are_bound_never_paths_a_command_names(tmp_path):
    helper, other = crate(tmp_path), crate(tmp_path, "other")
    missing = tmp_path / "missing"
    template = with_packages("rust", {"helper": str(helper), "gone": str(missing)})
    box = LocalSandbox(SandboxSpec(template=template), isolation="none")
    box._prepare()
    try:
        step = box._step_for(f"cargo add --path {other}", tmp_path, tmp_path, writable=True, network=False, caches="private")
    finally:
        asyncio.run(box.close())
    assert step.read_only == {str(helper.resolve()): str(helper)}  # a missing one is not bound: its install fails


@pytest.mark.parametrize(
    ("packages", "needle"), [({"helper": "relative/dir"}, "absolute path"), ({"../x": "/abs"}, "plain package name")]
)
def test_a_declaration_needs_a_name_and_an_absolute_path(packages, needle):
    with pytest.raises(ValidationError, match=needle):
        with_packages("rust", packages)


def test_the_digest_follows_the_contents_not_the_name(tmp_path):
    helper = crate(tmp_path)
    first = local_packages_digest({"helper": str(helper)})
    assert local_packages_digest({"helper": str(helper)}) == first
    (helper / "src" / "lib.rs").write_text("pub fn one() -> u32 { 2 }\n")
    assert local_packages_digest({"helper": str(helper)}) != first
    (helper / "target").mkdir()
    (helper / "target" / "junk").write_text("build output")
    changed = local_packages_digest({"helper": str(helper)})
    (helper / "target" / "junk").write_text("other build output")
    assert local_packages_digest({"helper": str(helper)}) == changed  # build outputs are not the package
    assert local_packages_digest({}) == ""


def test_an_archive_is_digested_by_its_bytes(tmp_path):
    wheel = tmp_path / "tinydep-1.0-py3-none-any.whl"
    wheel.write_bytes(b"one")
    first = local_packages_digest({"tinydep": str(wheel)})
    wheel.write_bytes(b"two")
    assert local_packages_digest({"tinydep": str(wheel)}) != first
