"""The program that lives inside a started sandbox and runs its commands on request.

It is started once per sandbox (``resident``), under bubblewrap with the same
namespaces, mounts and cleared environment as a one-shot command, and runs
with ``python -I -S``: the standard library only, nothing of devlooper (whose
source the sandbox cannot see). One more command then costs a fork, not a new
set of namespaces.

Requests arrive on stdin, one at a time: a 4-byte big-endian length and a JSON
object (``argv``, ``cwd``, ``env``, ``timeout``, ``rlimits``, ``memory_mb``).
Replies go to stdout as frames: one byte of kind (``r`` ready, ``o`` stdout,
``e`` stderr, ``x`` exit), a 4-byte length and the payload. Each command is a
fork in a session of its own with the request's resource limits, stdin from
``/dev/null``, its own environment; when it exits (or passes its time or memory
limit) every other process of the sandbox is killed with ``kill(-1)``, which in
a private pid namespace reaches exactly the sandbox's processes except its init
and this helper, so nothing a command started outlives it.

The helper makes itself non-dumpable first: a command runs as the same user,
and must not open the helper's pipes through ``/proc`` nor trace it.
"""

import ctypes
import json
import os
import resource
import selectors
import signal
import struct
import subprocess
import sys
import time

CHUNK = 1 << 18  # bytes read from a command's pipe at once
WATCH = 0.05  # seconds between two looks at the sandbox's memory
GRACE = 5.0  # seconds to drain the pipes once everything else is killed
PAGE = os.sysconf("SC_PAGE_SIZE")
PR_SET_DUMPABLE = 4


def send(kind, payload=b""):
    data = kind + struct.pack(">I", len(payload)) + payload
    while data:
        data = data[os.write(1, data) :]


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(0, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def others():
    """Live processes of the sandbox other than its init (pid 1) and this helper."""
    me, found = os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (1, me):
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rindex(b")") + 2 :][:1] != b"Z":
            found.append(int(name))
    return found


def rss():
    total = 0
    for pid in others():
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


def kill_all():
    """SIGKILL every process of the sandbox but init and this helper, until none is left."""
    for _ in range(100):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not others():
            return
        time.sleep(0.01)


def run(req):
    rlimits = req["rlimits"]

    def limit():
        for name, soft, hard in rlimits:
            resource.setrlimit(getattr(resource, name), (soft, hard))

    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            req["argv"], cwd=req["cwd"], env=req["env"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, preexec_fn=limit,
        )
    except OSError as exc:
        what = exc.filename if exc.filename is not None else req["argv"][0]
        send(b"e", f"{what}: {exc.strerror}".encode())
        send(b"x", json.dumps({"code": 127 if isinstance(exc, FileNotFoundError) else 126, "killed": None}).encode())
        return
    sel = selectors.DefaultSelector()
    streams = {proc.stdout.fileno(): b"o", proc.stderr.fileno(): b"e"}
    for fd in streams:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    try:  # readable when the command exits: no polling delay for short commands
        pidfd = os.pidfd_open(proc.pid)
        sel.register(pidfd, selectors.EVENT_READ)
    except (AttributeError, OSError):
        pidfd = None
    deadline, memory = started + req["timeout"], req.get("memory_mb")
    killed = None
    open_fds = set(streams)

    def drain(ready):
        for key, _ in ready:
            fd = key.fd
            if fd not in streams:
                continue
            try:
                chunk = os.read(fd, CHUNK)
            except BlockingIOError:
                continue
            if chunk:
                send(streams[fd], chunk)
            else:
                sel.unregister(fd)
                open_fds.discard(fd)

    while proc.poll() is None:
        left = deadline - time.monotonic()
        if left <= 0:
            killed = "timeout"
            break
        wait = min(left, WATCH) if (memory or pidfd is None) else left
        drain(sel.select(wait))
        if memory and proc.poll() is None and rss() > memory * 1048576:
            killed = "memory"
            break
    kill_all()
    proc.wait()
    end = time.monotonic() + GRACE
    while open_fds and time.monotonic() < end:
        drain(sel.select(max(0.0, end - time.monotonic())))
    if pidfd is not None:
        os.close(pidfd)
    sel.close()
    proc.stdout.close()
    proc.stderr.close()
    code = proc.returncode
    code = 128 - code if code < 0 else code  # a signal, as a shell or bubblewrap reports it
    send(b"x", json.dumps({"code": code, "killed": killed}).encode())


def main():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # the host went away: so do we
    send(b"r")
    while True:
        header = read_exact(4)
        if header is None:
            return
        body = read_exact(struct.unpack(">I", header)[0])
        if body is None:
            return
        run(json.loads(body))


if __name__ == "__main__":
    sys.exit(main())
