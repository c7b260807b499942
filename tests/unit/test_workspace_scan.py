"""Reading a hostile tree: links are reported and never followed, sizes are capped."""

import os
from pathlib import Path

import pytest

from devlooper.sandboxes.workspace import (
    TooLarge, digest, ignored, read_capped, remove_nofollow, scan, write_nofollow,
)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root, host = tmp_path / "ws", tmp_path / "host"
    root.mkdir()
    host.mkdir()
    (host / "secret").write_text("host secret")
    (root / "pkg").mkdir()
    (root / "pkg" / "a.py").write_text("a = 1\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (root / "evil").symlink_to(host / "secret")
    (root / "evildir").symlink_to(host)
    os.mkfifo(root / "fifo")
    return root, host


def test_scan_reports_links_and_special_files_without_following(tree):
    root, _ = tree
    kinds = {e.path: e.kind for e in scan(root, ["__pycache__"])}
    assert kinds == {"evil": "link", "evildir": "link", "fifo": "other", "pkg/a.py": "file"}


def test_read_refuses_links_anywhere_on_the_path_and_special_files(tree):
    root, _ = tree
    assert read_capped(root, "pkg/a.py") == b"a = 1\n"
    for rel in ("evil", "evildir/secret", "fifo"):
        with pytest.raises(OSError):
            read_capped(root, rel)


def test_read_is_capped(tree):
    root, _ = tree
    (root / "big").write_bytes(b"x" * 5000)
    with pytest.raises(TooLarge):
        read_capped(root, "big", cap=4096)


def test_write_replaces_a_link_and_never_writes_through_one(tree):
    root, host = tree
    write_nofollow(root, "evil", b"mine")
    assert (host / "secret").read_text() == "host secret"
    assert not (root / "evil").is_symlink() and (root / "evil").read_text() == "mine"
    with pytest.raises(OSError):
        write_nofollow(root, "evildir/secret", b"pwned")
    assert (host / "secret").read_text() == "host secret"
    write_nofollow(root, "new/dir/f.txt", b"ok")
    assert (root / "new/dir/f.txt").read_text() == "ok"


def test_remove_takes_the_link_not_its_target(tree):
    root, host = tree
    remove_nofollow(root, "evil")
    remove_nofollow(root, "evildir/secret")  # through a link: nothing happens
    assert (host / "secret").exists() and not os.path.lexists(root / "evil")


def test_ignore_patterns_match_names_and_paths():
    assert ignored("a/__pycache__/x.pyc", ["__pycache__"])
    assert ignored("target/debug/x", ["target"])
    assert ignored("pkg.egg-info/PKG-INFO", ["*.egg-info"])
    assert not ignored("src/target.py", ["target"])


def test_digest_depends_on_paths_and_contents():
    assert digest({"a": "1"}) == digest({"a": "1"})
    assert digest({"a": "1"}) != digest({"a": "2"}) != digest({"b": "1"})
