"""Outbound network for build steps, without the host's: bubblewrap plus slirp4netns.

A build step (an install, an environment command) runs in a network namespace
of its own, like a test run, and slirp4netns gives that namespace a user-mode
TCP/IP stack: it reaches the internet (package registries) through the host's
sockets, but never the host's loopback (``--disable-host-loopback``) and none
of the host's interfaces. DNS inside goes to slirp's forwarder at 10.0.2.3.

The order matters: bubblewrap reports its child's pid on ``--info-fd`` and
waits on ``--block-fd``; slirp4netns is attached to that child's namespace and
only when it says it is ready is the command let go, so the command never
sees a namespace without its network.

The namespace's owning user namespace is taken from the network namespace
itself (``NS_GET_USERNS``): unprivileged bubblewrap may move its child into a
nested user namespace, which has no right to configure the network.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time

from .base import SandboxError

SLIRP_DNS = "10.0.2.3"  # slirp's DNS forwarder inside the namespace
RESOLV_CONF = f"nameserver {SLIRP_DNS}\n"
NS_GET_USERNS = 0xB701  # ioctl on a namespace fd: the user namespace that owns it
READY_TIMEOUT = 10.0  # seconds for bubblewrap's pid and for slirp4netns to be ready
# Private and link-local ranges: the host's own network and its neighbours (a cloud's
# metadata service, the LAN). Made unreachable inside; slirp's 10.0.2.0/24 is more
# specific, so its gateway and DNS forwarder stay reachable.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10")


def slirp_binary() -> str | None:
    return shutil.which("slirp4netns")


class SlirpNetwork:
    """One command's network: made before the command, attached when it starts, ended after it."""

    def __init__(self) -> None:
        self._info_r, self.info_w = os.pipe()
        self.block_r, self._block_w = os.pipe()
        self._slirp: subprocess.Popen | None = None
        self._open = {self._info_r, self.info_w, self.block_r, self._block_w}

    def _close(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)

    @property
    def bwrap_args(self) -> list[str]:
        return ["--info-fd", str(self.info_w), "--block-fd", str(self.block_r)]

    @property
    def pass_fds(self) -> tuple[int, int]:
        return (self.info_w, self.block_r)

    def started(self, proc: subprocess.Popen) -> None:
        """bubblewrap is running and waiting: attach slirp4netns to its child, then let it go.

        Raises ``SandboxError`` when the network cannot be set up; the caller
        kills the command (it is still blocked, it never ran)."""
        self._close(self.info_w)
        self._close(self.block_r)
        try:
            pid = self._child_pid()
            if pid is None:
                try:
                    proc.wait(READY_TIMEOUT)
                    return  # bubblewrap failed before its child existed: its own error says why
                except subprocess.TimeoutExpired:
                    raise SandboxError("bubblewrap reported no child pid") from None
            _wait_for_loopback(pid)
            try:
                netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            except FileNotFoundError:
                return  # the sandbox already ended: its exit status and output say why
            try:
                userns = fcntl.ioctl(netns, NS_GET_USERNS)
            except OSError:
                os.close(netns)
                raise
            ready_r, ready_w = os.pipe()
            try:
                self._slirp = subprocess.Popen(
                    [
                        slirp_binary() or "slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                        "--netns-type=path", f"--userns-path=/proc/self/fd/{userns}", f"--ready-fd={ready_w}",
                        f"/proc/self/fd/{netns}", "tap0",
                    ],
                    pass_fds=(ready_w, userns, netns),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            finally:
                os.close(ready_w)
                os.close(userns)
                os.close(netns)
            try:
                ready = _read_within(ready_r, READY_TIMEOUT, until=b"1")
            finally:
                os.close(ready_r)
            if ready:
                _unreachable_private_ranges(pid)
            if not ready:
                why = b""
                if self._slirp.poll() is not None and self._slirp.stderr:
                    why = self._slirp.stderr.read()[-300:]
                raise SandboxError(f"slirp4netns could not give the build step a network: {why.decode(errors='replace').strip()}")
            os.write(self._block_w, b"1")
            self._close(self._block_w)
        finally:
            self._close(self._info_r)

    def _child_pid(self) -> int | None:
        data = _read_within(self._info_r, READY_TIMEOUT, until=b"}")
        if not data:
            return None
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError):
            raise SandboxError(f"bubblewrap reported no child pid: {data[:200]!r}") from None

    def finished(self) -> None:
        """The command ended: so does its network."""
        self.close()
        if self._slirp is not None:
            self._slirp.terminate()
            try:
                self._slirp.wait(5)
            except subprocess.TimeoutExpired:
                self._slirp.kill()
                self._slirp.wait()
            if self._slirp.stderr:
                self._slirp.stderr.close()
            self._slirp = None

    def close(self) -> None:
        """Close what is left open (after the command ended, or when it never started).

        The block pipe stays open until here on a failure: closing it earlier would
        let a command that was about to be killed start without its network."""
        for fd in list(self._open):
            self._close(fd)


# Run in a fresh interpreter outside the sandbox: it joins the namespace's owning user
# namespace (unless root) and the network namespace with setns, which gives it the
# capabilities to change routes there, and adds them over rtnetlink. Nothing is exec'd
# after the join (an exec as a non-root uid would drop those capabilities), which is
# why neither nsenter nor ip can do this for an unprivileged sandbox.
ROUTES_SCRIPT = r"""
import ctypes, ipaddress, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
for path, kind in ((sys.argv[1], 0x10000000), (sys.argv[2], 0x40000000)):  # CLONE_NEWUSER, CLONE_NEWNET
    if not path:
        continue
    fd = os.open(path, os.O_RDONLY)
    if libc.setns(fd, kind) != 0:
        sys.exit(f"setns {path}: {os.strerror(ctypes.get_errno())}")
    os.close(fd)
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
sock.bind((0, 0))
for seq, net in enumerate(sys.argv[3:], 1):
    net = ipaddress.ip_network(net)
    # rtmsg: family, dst_len, src_len, tos, table (main), protocol (boot), scope (universe), type (unreachable)
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, net.prefixlen, 0, 0, 254, 3, 0, 7, 0)
    body += struct.pack("=HH", 8, 1) + net.network_address.packed  # RTA_DST
    # RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    sock.send(struct.pack("=IHHII", 16 + len(body), 24, 0x1 | 0x4 | 0x400 | 0x200, seq, 0) + body)
    reply = sock.recv(65536)
    error = struct.unpack("=i", reply[16:20])[0] if struct.unpack("=H", reply[4:6])[0] == 2 else 0
    if error:
        sys.exit(f"route {net}: {os.strerror(-error)}")
"""


def _unreachable_private_ranges(pid: int) -> None:
    """Add unreachable routes for ``PRIVATE_RANGES`` in the network namespace of ``pid``."""
    netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        userns = fcntl.ioctl(netns, NS_GET_USERNS)
    finally:
        os.close(netns)
    try:
        own = os.geteuid() == 0  # root owns the namespace already: no user namespace to join
        done = subprocess.run(
            [sys.executable, "-I", "-c", ROUTES_SCRIPT, "" if own else f"/proc/self/fd/{userns}",
             f"/proc/{pid}/ns/net", *PRIVATE_RANGES],
            pass_fds=(userns,), capture_output=True, timeout=READY_TIMEOUT, stdin=subprocess.DEVNULL,
        )
    finally:
        os.close(userns)
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip()[-300:]
        raise SandboxError(f"could not keep the build step off private networks: {why}")


def _wait_for_loopback(pid: int) -> None:
    """Wait until bubblewrap has set up the namespace's loopback: slirp4netns configures
    the same namespace, and the two racing on it makes bubblewrap fail."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/net/fib_trie", "rb") as f:
                if b"127.0.0.1" in f.read():
                    return
        except OSError:
            return  # the process is gone: starting slirp4netns will say so
        time.sleep(0.002)


def _read_within(fd: int, timeout: float, *, until: bytes) -> bytes:
    """Bytes from ``fd`` until ``until`` shows up, end of file, or ``timeout``."""
    deadline, data = time.monotonic() + timeout, b""
    while until not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data
