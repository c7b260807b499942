"""Isolation of local commands with bubblewrap.

Inside the sandbox the host is visible read-only, except home directories
(where credentials live), which are replaced by empty directories; the
toolchain directories a template needs are bound back read-only. The
workspace, a private /tmp and the environment are the only writable places.
Every command gets new user, pid, ipc, uts and cgroup namespaces, a new
session, no capabilities, and no network unless it asks for it; it dies
with its parent.

When devlooper runs as root, bubblewrap runs privileged (no user namespace)
and the command switches its real user id to an unprivileged one with
``setpriv`` inside: the kernel does not enforce the process-count limit for
uid 0, so a root-owned sandbox would make a fork bomb a host problem. (The
switch happens inside because bubblewrap must still read toolchains under
``/root`` to bind them.) Processes of that uid share the process limit.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_UID = int(os.environ.get("DEVLOOPER_SANDBOX_UID", "65534"))  # used only when running as root
HIDDEN = ("/root", "/home")  # replaced by empty directories: that is where secrets live
SKIPPED = ("/proc", "/dev", "/tmp", "/sys", "/run", "/lost+found")  # provided fresh, or not at all


@dataclass
class Mounts:
    """Host directory -> path in the sandbox."""

    rw: dict[str, str] = field(default_factory=dict)
    ro: dict[str, str] = field(default_factory=dict)


def bwrap_binary() -> str | None:
    return shutil.which("bwrap")


def run_as_other_uid() -> bool:
    """Root runs sandboxed commands as ``SANDBOX_UID``; other users as themselves."""
    return os.geteuid() == 0


def owner_ids() -> tuple[int, int] | None:
    """The uid/gid that must own writable sandbox paths, or None if ours is fine."""
    return (SANDBOX_UID, SANDBOX_UID) if run_as_other_uid() else None


@functools.cache
def usable() -> tuple[bool, str]:
    """Whether bubblewrap works here (it is installed *and* user namespaces are allowed)."""
    binary = bwrap_binary()
    if binary is None:
        return False, "bubblewrap (bwrap) is not installed"
    argv = wrap(["true"], Mounts(), network=False, workdir="/")
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bubblewrap could not start: {exc}"
    if proc.returncode != 0:
        why = proc.stderr.decode(errors="replace").strip().splitlines()
        return False, f"bubblewrap cannot create a sandbox here: {why[-1] if why else proc.returncode}"
    return True, binary


ARCHIVES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".crate")
PACKAGE_DIRS = ("Cargo.toml", "package.json", "pyproject.toml", "setup.py")  # what makes a directory a package


def package_archives(command: str) -> list[str]:
    """Local packages an install names by absolute path (``pip install /tmp/x.whl``,
    ``cargo add --path /x/helper``).

    They are bound read-only, at the same path: only regular files with a
    package-archive suffix or directories holding a package manifest, never
    under a hidden home.
    """
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    found = []
    for word in words:
        word = word.split("=", 1)[-1] if word.startswith("--") else word  # --path=/x/helper
        path = os.path.realpath(word) if word.startswith("/") else ""
        package = (path.endswith(ARCHIVES) and os.path.isfile(path)) or (
            os.path.isdir(path) and any(os.path.isfile(os.path.join(path, m)) for m in PACKAGE_DIRS)
        )
        if package and not any(path == h or path.startswith(h + "/") for h in HIDDEN):
            found.append(word)
    return found


def toolchain_dirs(extra: Iterable[str] = ()) -> list[str]:
    """Host directories the sandbox needs even when they are under a hidden home."""
    dirs = {os.path.realpath(sys.base_prefix), os.path.realpath(os.path.dirname(sys.executable))}
    dirs.update(os.path.realpath(d) for d in extra)
    # ~/.cargo/bin/cargo needs ~/.rustup; a tool dir's parent holds its libraries.
    dirs.update(str(Path(d).parent) for d in list(dirs) if Path(d).name == "bin")
    rustup = Path(os.environ.get("RUSTUP_HOME") or Path.home() / ".rustup")
    if any("/.cargo" in d for d in dirs) and rustup.is_dir():
        dirs.add(str(rustup))
    return sorted(d for d in dirs if any(d == h or d.startswith(h + "/") for h in HIDDEN))


def wrap(
    argv: Sequence[str],
    mounts: Mounts,
    *,
    network: bool,
    workdir: str,
    env: dict[str, str] | None = None,
    toolchains: Iterable[str] = (),
) -> list[str]:
    """The command line that runs ``argv`` isolated (``env`` is the whole environment)."""
    out = [bwrap_binary() or "bwrap"]
    as_root = run_as_other_uid()
    if as_root:
        out += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        out += [] if network else ["--unshare-net"]
        # Only what setpriv needs to give up root; it is lost with the uid switch.
        out += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        argv = ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--", *argv]
    else:
        out += ["--unshare-all", *(["--share-net"] if network else []), "--cap-drop", "ALL"]
    out += ["--die-with-parent", "--new-session", "--clearenv"]
    for entry in sorted(os.listdir("/")):
        host = "/" + entry
        if host in SKIPPED:
            continue
        if os.path.islink(host):
            out += ["--symlink", os.readlink(host), host]
        elif host in HIDDEN:
            out += ["--dir", host]
        elif os.path.isdir(host):
            out += ["--ro-bind", host, host]
    made: set[str] = set()
    for host in toolchain_dirs(toolchains):
        # bubblewrap would create the missing parents 0700: unreadable after the uid switch.
        for parent in reversed(Path(host).parents):
            if str(parent) not in made and str(parent) not in ("/", *HIDDEN):
                made.add(str(parent))
                out += ["--perms", "0755", "--dir", str(parent)]
        out += ["--ro-bind", host, host]
    out += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--dir", "/run"]
    # Writable places first: a read-only file may be bound inside one (a wheel under /tmp).
    destinations = {*mounts.ro.values(), *mounts.rw.values()}
    for flag, table in (("--bind", mounts.rw), ("--ro-bind", mounts.ro)):
        for host, inside in table.items():
            # Missing parents of the mount point are made 0755 (bubblewrap's default is 0700).
            for parent in list(reversed(Path(inside).parents))[1:]:
                top_level_host_dir = len(parent.parts) == 2 and os.path.exists(parent)
                if str(parent) not in made and str(parent) not in destinations and not top_level_host_dir:
                    made.add(str(parent))
                    out += ["--perms", "0755", "--dir", str(parent)]
            out += [flag, host, inside]
    for key, value in (env or {}).items():
        out += ["--setenv", key, value]
    out += ["--chdir", workdir, "--", *argv]
    return out
