"""A throwaway Postgres server for the test suite (initdb in a temp dir, pg_ctl on a free port).

Debian's ``postgresql`` package provides the binaries (``make test`` installs it
when it runs as root with apt). Postgres refuses to run as root, so as root the
server runs as the ``postgres`` user the package creates. Where any of this is
impossible, the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Unavailable(Exception):
    """Why no Postgres server can be started here."""


def _bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise Unavailable(f"{name} not found: install Debian's postgresql package (apt-get install -y postgresql)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield its ``postgresql://`` URL; stop it and delete its data."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user to run the server as") from None
    root = Path(tempfile.mkdtemp(prefix="devlooper-pg-"))
    data, sockets, log = root / "data", root / "run", root / "server.log"
    sockets.mkdir()
    if user is not None:
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    run_as = {"user": user.pw_uid, "group": user.pw_gid} if user is not None else {}
    port = _free_port()
    try:
        done = subprocess.run(
            [initdb, "-D", str(data), "-U", "devlooper", "--auth=trust", "-E", "UTF8", "--no-sync"],
            capture_output=True, text=True, timeout=120, **run_as,
        )
        if done.returncode != 0:
            raise Unavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        done = subprocess.run(
            [pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"],
            capture_output=True, text=True, timeout=90, **run_as,
        )
        if done.returncode != 0:
            tail = log.read_text()[-500:] if log.exists() else done.stderr
            raise Unavailable(f"pg_ctl start failed: {tail.strip()}")
        try:
            yield f"postgresql://devlooper@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True, timeout=60, **run_as)
    finally:
        shutil.rmtree(root, ignore_errors=True)
