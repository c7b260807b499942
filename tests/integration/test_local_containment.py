"""Containment of generated code by the local sandbox under bubblewrap.

Each test starts what a careless or hostile project might do and checks that
the call comes back in time, says which limit ended it, and leaves nothing
behind. Limits are set low so that a failure here cannot hurt the machine.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from devlooper.sandboxes import bwrap
from devlooper.sandboxes.base import SandboxSpec
from devlooper.sandboxes.limits import Limits
from devlooper.sandboxes.local import LocalSandbox
from devlooper.templates import get_template

USABLE, WHY = bwrap.usable()
pytestmark = pytest.mark.skipif(not USABLE, reason=f"containment needs bubblewrap: {WHY}")

SAFE = Limits(memory_mb=300, address_space_mb=2048, processes=64, file_size_mb=64)


@pytest.fixture
async def box():
    sandbox = LocalSandbox(SandboxSpec(template=get_template("python"), run_id="contain"), limits=SAFE, isolation="bwrap")
    async with sandbox:
        yield sandbox


def leftovers(marker: str) -> list[int]:
    """Processes whose environment carries ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if marker.encode() in Path(f"/proc/{name}/environ").read_bytes():
                found.append(int(name))
        except OSError:
            continue
    return found


async def run_marked(box: LocalSandbox, command: str, timeout: float):
    marker = f"DEVLOOPER_TEST_MARKER={uuid.uuid4().hex}"
    key, value = marker.split("=")
    result = await box.exec(command, timeout=timeout, env={key: value})
    return result, marker


def zombie_children() -> list[int]:
    """Children of this process that exited and were never reaped."""
    found = []
    for name in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{name}/stat").read_text() if name.isdigit() else ""
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split() if stat else []
        if fields and fields[0] == "Z" and int(fields[1]) == os.getpid():
            found.append(int(name))
    return found


def hwm() -> int:
    """Peak resident memory of this process so far, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


async def test_fork_bomb_is_contained(box):
    started = time.monotonic()
    result, marker = await run_marked(box, "bomb() { bomb | bomb & }; bomb; sleep 30", timeout=5)
    assert time.monotonic() - started < 5 + 5
    assert result.timed_out and result.killed == "timeout"
    time.sleep(0.5)
    assert leftovers(marker) == []


async def test_too_many_processes_is_reported(box):
    spawn = "python -c 'import subprocess\nfor _ in range(200): subprocess.Popen([\"sleep\", \"30\"])'"
    result, marker = await run_marked(box, spawn, timeout=30)
    assert result.killed == "processes", result.output
    assert result.duration < 20
    time.sleep(0.3)
    assert leftovers(marker) == []


async def test_memory_hog_is_killed_and_reported(box):
    hog = "python -c 'a = []\nwhile True: a.append(bytearray(10**7))'"
    result = await box.exec(hog, timeout=30)
    assert result.killed == "memory", result.output
    assert not result.ok and not result.timed_out
    assert result.duration < 15


async def test_single_huge_allocation_hits_the_address_space_limit(box):
    result = await box.exec("python -c 'bytearray(16 * 10**9)'", timeout=30)
    assert result.killed == "memory", result.output
    assert "MemoryError" in result.stderr


async def test_endless_output_is_capped_in_constant_memory(box):
    before = hwm()
    result = await box.exec("yes", timeout=3)
    assert result.timed_out
    assert result.truncated and result.dropped > 10_000_000
    assert len(result.stdout) < 1_100_000
    assert result.stdout.startswith("y\ny\n") and "bytes dropped" in result.stdout
    assert hwm() - before < 50 * 1024 * 1024


async def test_a_gigabyte_of_output_is_counted(box):
    before = hwm()
    result = await box.exec("head -c 1000000000 /dev/zero | tr '\\0' x; printf '\\n\\xff\\xfe end'", timeout=120)
    assert result.exit_code == 0, result.stderr
    assert result.dropped + len(result.stdout.encode()) > 1_000_000_000 - 1_000_000
    assert result.stdout.endswith("\n\ufffd\ufffd end")  # non-UTF-8 bytes decoded with replacement
    assert hwm() - before < 50 * 1024 * 1024


async def test_infinite_loop_with_background_sleep_leaves_nothing(box):
    result, marker = await run_marked(box, "sleep 1000 & while :; do :; done", timeout=2)
    assert result.timed_out and result.exit_code == 124
    time.sleep(0.3)
    assert leftovers(marker) == []
    assert zombie_children() == []


async def test_background_child_of_a_finished_command_is_reaped(box):
    started = time.monotonic()
    result, marker = await run_marked(box, "(setsid sleep 1000 &); nohup sleep 1000 >/dev/null 2>&1 & echo done", timeout=30)
    assert result.ok and result.stdout.strip() == "done"
    assert time.monotonic() - started < 5
    time.sleep(0.3)
    assert leftovers(marker) == []


async def test_stdin_and_pagers_return_at_once(box):
    started = time.monotonic()
    result = await box.exec("python -c 'input()'", timeout=20)
    assert result.exit_code != 0 and "EOFError" in result.stderr
    paged = await box.exec("python -c \"import pydoc; pydoc.pager('line\\n' * 5000)\"; git --no-pager --version", timeout=20)
    assert paged.ok and paged.stdout.count("line") == 5000
    assert time.monotonic() - started < 10


async def test_no_network_while_tests_run(box):
    curl = await box.exec("curl -sS -m 5 https://pypi.org/simple/", timeout=20)
    assert curl.exit_code != 0
    dns = await box.exec("python -c 'import socket; socket.getaddrinfo(\"pypi.org\", 443)'", timeout=20)
    assert dns.exit_code != 0 and "gaierror" in dns.stderr
    ip = await box.exec("python -c 'import socket; socket.create_connection((\"1.1.1.1\", 53), timeout=3)'", timeout=20)
    assert ip.exit_code != 0
    pip = await box.exec("python -m pip install --no-input six-that-does-not-matter", timeout=60)
    assert pip.exit_code != 0
    assert pip.duration < 30


async def test_writes_outside_the_workspace_fail(box):
    cache = Path(os.environ["DEVLOOPER_CACHE_DIR"])
    probes = ["/usr/devlooper-probe", "/etc/devlooper-probe", "/env/devlooper-probe", f"{cache}/devlooper-probe"]
    for path in probes:
        result = await box.exec(f"echo x > {path}", timeout=10)
        assert result.exit_code != 0, path
        assert not Path(path).exists()
    inside = await box.exec("echo x > made.txt && cat made.txt", timeout=10)
    assert inside.ok and await box.read_file("made.txt") == "x\n"


async def test_host_secrets_and_homes_are_invisible(box, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    monkeypatch.setenv("E2B_API_KEY", "e2b-host-secret")
    result = await box.exec("env; ls -A /root /home", timeout=10)
    assert result.ok
    assert "host-secret" not in result.stdout
    assert "OPENAI_API_KEY" not in result.stdout and "E2B_API_KEY" not in result.stdout
    assert ".bash_history" not in result.stdout and ".ssh" not in result.stdout
