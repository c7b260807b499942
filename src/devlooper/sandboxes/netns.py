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
            _wait_for_loopback(pid)
            netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
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

    def _child_pid(self) -> int:
        data = _read_within(self._info_r, READY_TIMEOUT, until=b"}")
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


def _unreachable_private_ranges(pid: int) -> None:
    """Add unreachable routes for ``PRIVATE_RANGES`` in the namespace of ``pid`` (with
    nsenter and ip, joining the namespace's owning user namespace when not root)."""
    nsenter, ip = shutil.which("nsenter"), shutil.which("ip") or "/usr/sbin/ip"
    if not nsenter or not os.path.exists(ip):
        raise SandboxError("nsenter and ip (util-linux, iproute2) are needed to keep build steps off private networks")
    netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        userns = fcntl.ioctl(netns, NS_GET_USERNS)
    finally:
        os.close(netns)
    try:
        join = [f"--net=/proc/{pid}/ns/net"]
        if os.geteuid() != 0:
            join.insert(0, f"--user=/proc/self/fd/{userns}")
        script = "; ".join(f"{ip} route add unreachable {net}" for net in PRIVATE_RANGES)
        done = subprocess.run(
            [nsenter, *join, "--", "/bin/sh", "-c", f"set -e; {script}"],
            pass_fds=(userns,), capture_output=True, timeout=READY_TIMEOUT,
        )
    finally:
        os.close(userns)
    if done.returncode != 0:
        raise SandboxError(f"could not keep the build step off private networks: {done.stderr.decode(errors='replace').strip()[-300:]}")


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
