"""The program that lives inside a started sandbox and runs its commands on request.

It is started once per sandbox (``resident``), under bubblewrap with the same
namespaces, mounts and cleared environment as a one-shot command, and runs
with ``python -I -S``: the standard library only, nothing of devlooper (whose
source the sandbox cannot see). One more command then costs a fork, not a new
set of namespaces.

Its start is on the path of a sandbox's first command, so it imports only
modules that load in well under a millisecond (no ``subprocess``, ``json``,
``selectors`` nor ``signal``: together they took three times the interpreter's
own start): a command is started with ``fork``/``execvpe`` here, requests are
``marshal``-ed, replies are plain bytes.

Requests arrive on stdin, one at a time: a 4-byte big-endian length and a
``marshal``-ed dict (``argv``, ``cwd``, ``env``, ``timeout``, ``rlimits``,
``memory_mb``); only the host writes them, with this same interpreter.
Replies go to stdout as frames: one byte of kind (``r`` ready, ``o`` stdout,
``e`` stderr, ``x`` exit), a 4-byte big-endian length and the payload; an exit's
payload is ASCII: the exit code, and ``timeout`` or ``memory`` after a space
when the helper killed the command. Each command is a fork in a session of its
own with the request's resource limits, stdin from ``/dev/null``, default
signal dispositions, its own environment; when it exits (or passes its time or
memory limit) every other process of the sandbox is killed with ``kill(-1)``,
which in a private pid namespace reaches exactly the sandbox's processes except
its init and this helper, so nothing a command started outlives it.

The helper makes itself non-dumpable first: a command runs as the same user,
and must not open the helper's pipes through ``/proc`` nor trace it.
"""

import _signal  # ``signal`` is this plus enums, whose import alone costs more than the rest
import ctypes
import marshal
import os
import resource
import select
import time

CHUNK = 1 << 18  # bytes read from a command's pipe at once
WATCH = 0.05  # seconds between two looks at the sandbox's memory
GRACE = 5.0  # seconds to drain the pipes once everything else is killed
PAGE = os.sysconf("SC_PAGE_SIZE")
PR_SET_DUMPABLE = 4
EXEC_FAILED = 255  # the child's exit status when it could not start the command


def send(kind, payload=b""):
    data = kind + len(payload).to_bytes(4, "big") + payload
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
            os.kill(-1, _signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not others():
            return
        time.sleep(0.01)


def spawn(req):
    """Start the request's command; (pid, stdout fd, stderr fd), or an OSError saying
    what could not be started (its ``filename`` the directory or the program)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    fail_r, fail_w = os.pipe()  # close-on-exec: empty when the exec succeeded
    argv, cwd, env = req["argv"], req["cwd"], req["env"]
    pid = os.fork()
    if pid == 0:
        where = cwd
        try:
            os.setsid()
            os.chdir(cwd)
            for name, soft, hard in req["rlimits"]:
                resource.setrlimit(getattr(resource, name), (soft, hard))
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.closerange(3, fail_w)
            os.closerange(fail_w + 1, 1 << 16)
            where = argv[0]
            os.execvpe(argv[0], argv, env)
        except OSError as exc:
            os.write(fail_w, f"{exc.errno} {where}".encode(errors="replace"))
        except BaseException:  # noqa: BLE001 - a malformed request: said, never raised here
            os.write(fail_w, b"0 " + str(argv[:1]).encode(errors="replace"))
        finally:  # the child never returns into the helper's loop
            os._exit(EXEC_FAILED)
    for fd in (out_w, err_w, fail_w):
        os.close(fd)
    failure = b""
    while chunk := os.read(fail_r, 4096):
        failure += chunk
    os.close(fail_r)
    if failure:
        os.waitpid(pid, 0)
        os.close(out_r)
        os.close(err_r)
        code, _, what = failure.decode(errors="replace").partition(" ")
        raise OSError(int(code), os.strerror(int(code)) if int(code) else "could not start", what)
    return pid, out_r, err_r


def run(req):
    started = time.monotonic()
    try:
        pid, out_fd, err_fd = spawn(req)
    except OSError as exc:
        send(b"e", f"{exc.filename}: {exc.strerror}".encode(errors="replace"))
        send(b"x", b"127" if isinstance(exc, FileNotFoundError) else b"126")
        return
    streams = {out_fd: b"o", err_fd: b"e"}
    poll = select.poll()
    for fd in streams:
        os.set_blocking(fd, False)
        poll.register(fd, select.POLLIN)
    try:  # readable when the command exits: no polling delay for short commands
        pidfd = os.pidfd_open(pid)
        poll.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):
        pidfd = None
    deadline, memory = started + req["timeout"], req.get("memory_mb")
    killed, status = None, None

    def drain(ready):
        for fd, _ in ready:
            if fd not in streams:
                continue
            try:
                chunk = os.read(fd, CHUNK)
            except BlockingIOError:
                continue
            if chunk:
                send(streams[fd], chunk)
            else:
                poll.unregister(fd)
                os.close(fd)
                del streams[fd]

    def exited():
        nonlocal status
        if status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
        return status is not None

    while not exited():
        left = deadline - time.monotonic()
        if left <= 0:
            killed = "timeout"
            break
        wait = min(left, WATCH) if (memory or pidfd is None) else left
        drain(poll.poll(wait * 1000))
        if memory and not exited() and rss() > memory * 1048576:
            killed = "memory"
            break
    kill_all()
    if status is None:
        status = os.waitpid(pid, 0)[1]
    end = time.monotonic() + GRACE
    while streams and time.monotonic() < end:
        drain(poll.poll(max(0.0, end - time.monotonic()) * 1000))
    for fd in [*streams, *([pidfd] if pidfd is not None else [])]:
        os.close(fd)
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code  # a signal, as a shell or bubblewrap reports it
    send(b"x", f"{code} {killed}".encode() if killed else str(code).encode())


def main():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    # Default dispositions for the commands, which inherit them (Python ignores both at
    # start); for the helper SIGPIPE's default means: the host went away, so do we.
    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
    send(b"r")
    while True:
        header = read_exact(4)
        if header is None:
            return
        body = read_exact(int.from_bytes(header, "big"))
        if body is None:
            return
        run(marshal.loads(body))


if __name__ == "__main__":
    main()
