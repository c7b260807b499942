"""Isolation of local commands with bubblewrap: the smallest view of the host.

Inside the sandbox only what a toolchain needs is visible, read-only: the
system directories (``/usr`` and the ``/lib*``, ``/bin``, ``/sbin`` links), a
minimal ``/etc`` (name resolution, users, certificates, the dynamic linker's
cache, alternatives, the time zone), and the template's toolchains (binaries
and toolchain directories only: ``~/.cargo/bin`` but never the cargo home's
``credentials*`` or ``config*``). Add the environment, the workspace, a
private ``/tmp`` and host paths the user declared in the template, and that is
all: home directories, ``/opt``, ``/var``, ``/srv``, ``/mnt``, the host's
``/tmp`` and the rest of ``/etc`` do not exist inside. Every command gets new
user (unprivileged), pid, ipc, uts, cgroup and network namespaces, a new
session and no capabilities; it dies with its parent. A build step's network
is its own namespace with slirp4netns attached (see ``netns``); the host's
network namespace is never shared.

When devlooper runs as root, bubblewrap runs privileged (no user namespace)
and the command switches its real user id to an unprivileged one with
``setpriv`` inside: the kernel does not enforce the process-count limit for
uid 0, so a root-owned sandbox would make a fork bomb a host problem. (The
switch happens inside because bubblewrap must still read toolchains under
``/root`` to bind them.) Processes of that uid share the process limit.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_UID = int(os.environ.get("DEVLOOPER_SANDBOX_UID", "65534"))  # used only when running as root
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # bound read-only, or linked as on the host
# The parts of /etc that pip, npm, cargo, git and test runners read; nothing else of it exists inside.
# ``minimal_etc`` copies the files of them into a directory bound once as /etc, and the
# directories (ssl, alternatives: hundreds of links each) are bound into it.
ETC = (
    "resolv.conf", "hosts", "host.conf", "gai.conf", "nsswitch.conf", "services", "protocols",
    "passwd", "group", "ssl", "ca-certificates", "ca-certificates.conf", "pki",
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "timezone", "mime.types",
)

ETC_KEEP = 7 * 86400.0  # seconds an unused copy of an earlier state of /etc is kept (``minimal_etc``)


@dataclass
class Mounts:
    """Host directory -> path in the sandbox; ``etc`` is a directory made by
    ``minimal_etc``, seen as /etc (None: /etc is empty)."""

    rw: dict[str, str] = field(default_factory=dict)
    ro: dict[str, str] = field(default_factory=dict)
    etc: str | None = None


def minimal_etc(parent: Path) -> Path:
    """The directory seen as /etc in sandboxes: a copy of each of ``ETC``'s files the host
    has, and an empty directory where each of its directories is bound (``wrap``).

    Each bind mount costs bubblewrap a read of the mount table: one bind of this
    directory instead of one per file (fifteen) takes about a fifth off a bubblewrap's
    start. It is made once under ``parent`` (the cache directory, which no command can
    see) for the current state of the host's files, named by their digest: a changed
    ``passwd`` or ``resolv.conf`` gives a new one, and copies no start used for
    ``ETC_KEEP`` are removed. The host's /etc is trusted: its
    links (``localtime``) are followed. ``resolv.conf`` is always there, empty when
    the host has none: a build step's network binds its own over it."""
    state = hashlib.sha256()
    for name in ETC:
        try:
            st = os.stat(f"/etc/{name}")
        except OSError:
            continue
        state.update(f"{name}\0{st.st_mode}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    final = parent / f"etc-{state.hexdigest()[:16]}"
    with contextlib.suppress(FileNotFoundError):
        if time.time() - os.stat(final).st_mtime > ETC_KEEP / 7:
            os.utime(final)  # still in use: the prune below keeps it
        return final
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".etc-", dir=parent))
    try:
        scratch.chmod(0o755)
        for name in ETC:
            host, mine = Path("/etc", name), scratch / name
            if host.is_dir():
                mine.mkdir(mode=0o755)
                mine.chmod(0o755)  # whatever the umask
            elif host.is_file():
                shutil.copyfile(host, mine)
                mine.chmod(0o644)
        if not (scratch / "resolv.conf").exists():
            (scratch / "resolv.conf").touch(mode=0o644)
        os.rename(scratch, final)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        if not final.is_dir():  # another process made it first: that one is as good
            raise
    # The host's files changed: copies of their earlier states that no sandbox used for
    # ETC_KEEP go (a running sandbox's is recent: each start marks it used, once a day).
    for old in parent.glob("etc-*"):
        with contextlib.suppress(OSError):
            if old != final and time.time() - os.lstat(old).st_mtime > ETC_KEEP:
                shutil.rmtree(old)
    return final


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
    argv = wrap(["true"], Mounts(), workdir="/")
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bubblewrap could not start: {exc}"
    if proc.returncode != 0:
        why = proc.stderr.decode(errors="replace").strip().splitlines()
        return False, f"bubblewrap cannot create a sandbox here: {why[-1] if why else proc.returncode}"
    return True, binary


def toolchain_binds(tool_dirs: Iterable[str] = ()) -> list[str]:
    """Host paths of the toolchains the sandbox needs, bound read-only at the same path.

    ``tool_dirs`` are the directories of the template's tools (``runtimes.tool_path``).
    Anything under ``/usr`` is visible already. A ``bin`` directory brings its
    toolchain with it (its parent holds the libraries), except a cargo home's:
    there only ``bin`` is bound, with rustup's toolchains and settings, since the
    cargo home also holds ``credentials.toml`` and ``config.toml``."""
    found = {os.path.realpath(sys.base_prefix)}  # the interpreter venvs are made from
    cargo_home = os.path.realpath(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    rustup = os.path.realpath(os.environ.get("RUSTUP_HOME") or Path.home() / ".rustup")
    for d in (os.path.realpath(x) for x in tool_dirs):
        if not os.path.isdir(d):
            continue
        if d == os.path.join(cargo_home, "bin"):
            found.add(d)
            found.update(os.path.join(rustup, name) for name in ("toolchains", "settings.toml", "update-hashes"))
        elif Path(d).name == "bin":
            found.add(str(Path(d).parent))
        else:
            found.add(d)
    return sorted(d for d in found if os.path.exists(d) and d != "/" and d != "/usr" and not d.startswith("/usr/"))


def wrap(
    argv: Sequence[str],
    mounts: Mounts,
    *,
    workdir: str,
    env: dict[str, str] | None = None,
    toolchains: Iterable[str] = (),
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line that runs ``argv`` isolated (``env`` is the whole environment).

    ``extra`` are more bubblewrap options (the network's ``--info-fd``/``--block-fd``)."""
    out = [bwrap_binary() or "bwrap"]
    if run_as_other_uid():
        out += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--unshare-net"]
        # Only what setpriv needs to give up root; it is lost with the uid switch.
        out += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        argv = ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--", *argv]
    else:
        out += ["--unshare-all", "--cap-drop", "ALL"]
    out += ["--die-with-parent", "--new-session", "--clearenv", *extra]
    for host in SYSTEM:
        if os.path.islink(host):
            out += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            out += ["--ro-bind", host, host]
    if mounts.etc is None:
        out += ["--perms", "0755", "--dir", "/etc"]
    else:
        out += ["--ro-bind", mounts.etc, "/etc"]
        for name in ETC:  # the directories: their mount points are in the copy
            if os.path.isdir(os.path.join(mounts.etc, name)):
                out += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    made: set[str] = {"/etc"}
    destinations = {*mounts.ro.values(), *mounts.rw.values()}
    out += ["--dev", "/dev", "--proc", "/proc", "--dir", "/run"]
    if "/tmp" not in destinations:  # a mount fewer when the sandbox brings its own /tmp
        out += ["--tmpfs", "/tmp"]
    # Writable places first: a read-only file may be bound inside one.
    for flag, table in (("--bind", mounts.rw), ("--ro-bind", mounts.ro)):
        for host, inside in table.items():
            # Missing parents of the mount point are made 0755 (bubblewrap's default is 0700).
            for parent in list(reversed(Path(inside).parents))[1:]:
                if str(parent) not in made and str(parent) not in destinations and str(parent) not in SYSTEM:
                    made.add(str(parent))
                    out += ["--perms", "0755", "--dir", str(parent)]
            out += [flag, host, inside]
    # Toolchains last: one may live under a path mounted above (a fresh clone's venv under /tmp).
    for host in toolchain_binds(toolchains):
        # bubblewrap would create the missing parents 0700: unreadable after the uid switch.
        for parent in reversed(Path(host).parents):
            if str(parent) not in made and str(parent) not in ("/", "/tmp"):
                made.add(str(parent))
                out += ["--perms", "0755", "--dir", str(parent)]
        out += ["--ro-bind", host, host]
    # The sandbox's own root (a tmpfs holding the mount points) read-only too: unprivileged,
    # its directories belong to the user, who could otherwise write /etc or / inside.
    out += ["--remount-ro", "/"]
    for key, value in (env or {}).items():
        out += ["--setenv", key, value]
    out += ["--chdir", workdir, "--", *argv]
    return out
