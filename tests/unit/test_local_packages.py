"""Which local packages an install names, to be bound into bubblewrap at the same path."""

from __future__ import annotations

from pathlib import Path

from devlooper.sandboxes import bwrap


def test_a_crate_directory_named_by_cargo_add_is_a_local_package(tmp_path: Path):
    crate = tmp_path / "helper"
    crate.mkdir()
    (crate / "Cargo.toml").write_text('[package]\nname = "helper"\n')
    command = f'cargo add --manifest-path "$DEVLOOPER_ENV/deps/Cargo.toml" --path {crate} && cargo fetch'
    assert bwrap.package_archives(command) == [str(crate)]
    assert bwrap.package_archives(f"cargo add --path={crate}") == [str(crate)]


def test_a_directory_without_a_package_manifest_is_not(tmp_path: Path):
    (tmp_path / "plain").mkdir()
    assert bwrap.package_archives(f"cargo add --path {tmp_path / 'plain'}") == []
    assert bwrap.package_archives("cargo add --path /") == []


def test_nothing_under_a_hidden_home_is_bound(monkeypatch, tmp_path: Path):
    crate = tmp_path / "helper"
    crate.mkdir()
    (crate / "Cargo.toml").write_text("")
    monkeypatch.setattr(bwrap, "HIDDEN", (str(tmp_path),))
    assert bwrap.package_archives(f"cargo add --path {crate}") == []
