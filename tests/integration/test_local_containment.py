"""Containment of generated code by the local sandbox under bubblewrap.

Each test starts what a careless or hostile project might do and checks that
the call comes back in time, says which limit ended it, and leaves nothing
behind. Limits are set low so that a failure here cannot hurt the machine.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest

from devlooper.sandboxes import bwrap
from devlooper.sandboxes.base import SandboxSpec
from devlooper.templates.base import EnvTemplate
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
    result = await box.exec("env; ls -A /root; test ! -e /home && test ! -e /opt && test ! -e /etc/shadow", timeout=10)
    assert result.ok, result.output
    assert "host-secret" not in result.stdout
    assert "OPENAI_API_KEY" not in result.stdout and "E2B_API_KEY" not in result.stdout
    assert ".bash_history" not in result.stdout and ".ssh" not in result.stdout


async def test_etc_holds_only_what_toolchains_read_and_cannot_be_changed(box):
    # Alone, and while another command runs (in the resident sandbox process): then it gets a
    # bubblewrap of its own. Both see the same /etc.
    for concurrent in (False, True):
        command = (
            "ls -A /etc; echo x >> /etc/passwd || echo passwd-refused; touch /etc/ssl/probe || echo ssl-refused;"
            " test -s /etc/ssl/certs/ca-certificates.crt && echo bundle; test ! -e /cache && echo no-download-cache;"
            " getent passwd root >/dev/null && echo users"
        )
        runs = ([box.exec("sleep 0.5", timeout=10)] if concurrent else []) + [box.exec(command, timeout=10)]
        result = (await asyncio.gather(*runs))[-1]
        lines = result.stdout.split()
        listed = set(lines) - {"passwd-refused", "ssl-refused", "bundle", "no-download-cache", "users"}
        assert listed and listed <= set(bwrap.ETC), result.output
        assert {"passwd-refused", "ssl-refused", "no-download-cache", "users"} <= set(lines), result.output
        assert ("bundle" in lines) == os.path.isfile("/etc/ssl/certs/ca-certificates.crt")
    assert not Path("/etc/ssl/probe").exists()


# --- the paths around the sandbox: what the host does with what a command left ----------

def victim(tmp_path: Path) -> Path:
    """A host file (in a directory the test owns) that no sandbox may get written."""
    target = tmp_path / "host-file.txt"
    target.write_text("host content\n")
    return target


def planting(tmp_path: Path, target: Path) -> EnvTemplate:
    """A template whose install plants links in the environment it builds, as an
    ``install .`` whose setup.py does it would."""
    plant = f"ln -sf {target} \"$DEVLOOPER_ENV/.devlooper-env.json\"; ln -sfn {target.parent} \"$DEVLOOPER_ENV/node_modules\""
    return EnvTemplate(
        name=f"plant-{tmp_path.name}"[:60], description="plants links", runtime="generic",
        install_command=f"{plant}; echo {{packages}} >> \"$DEVLOOPER_ENV/installed\"",
        env_links=["node_modules"], test_command="true", manifest="none",
    )


async def test_links_planted_in_a_built_environment_are_never_followed(tmp_path):
    target = victim(tmp_path)
    sandbox = LocalSandbox(SandboxSpec(template=planting(tmp_path, target), run_id="plant"), isolation="bwrap")
    async with sandbox as box:
        installed = await box.add_layer({"kind": "install", "spec": "one", "iteration": 1}, timeout=60)
        assert installed.ok, installed.output
        command = f"ln -sf {target} \"$DEVLOOPER_ENV/.devlooper-env.json\"; ln -sf {target} \"$DEVLOOPER_ENV/pyvenv.cfg\""
        planted = await box.add_layer({"kind": "command", "spec": command, "iteration": 1, "workspace": "w"}, timeout=60)
        assert planted.ok, planted.output
        more = await box.add_layer({"kind": "install", "spec": "two", "iteration": 2}, timeout=60)
        assert more.ok, more.output
        with pytest.raises(OSError):
            await box.read_env_file(".devlooper-env.json")
        assert os.path.islink(box.workspace / "node_modules")  # the template's link, to /env: never read by the host
        assert box.cache.info(box.env_key)["layers"][-1]["spec"] == "two"  # metadata beside the entry
    assert target.read_text() == "host content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host-file.txt"]


async def test_a_results_file_that_is_a_link_or_huge_is_not_read_and_the_model_is_told(box, tmp_path):
    from devlooper.nodes.test import _report

    target = victim(tmp_path)
    linked = await box.exec(f"ln -s {target} report.xml", timeout=10)
    assert linked.ok
    report, note = await _report(box, "report.xml")
    assert report is None and "report.xml was not read" in note
    await box.write_file("report.xml", "<testsuite/>")  # replaces the link, never writes through it
    assert target.read_text() == "host content\n"
    huge = await box.exec("head -c 66000000 /dev/zero | tr '\\0' x > report.xml", timeout=60)
    assert huge.ok, huge.output
    before = hwm()
    report, note = await _report(box, "report.xml")
    assert report is None and "more than" in note
    assert hwm() - before < 20 * 1024 * 1024  # the file was never read into memory


async def test_a_build_step_cannot_reach_the_hosts_loopback(box):
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def serve() -> None:
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        step = f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo reached"
        result = await box.add_layer({"kind": "command", "spec": step, "iteration": 1, "workspace": "w"}, timeout=60)
        assert not result.ok and "reached" not in result.stdout
        test_run = await box.exec(step, timeout=10)
        assert not test_run.ok
    finally:
        thread.join(2)
        server.close()
    assert accepted == []


async def test_a_host_tmp_package_named_by_a_command_is_not_visible(box, tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "setup.py").write_text("from setuptools import setup\nsetup(name='pkg')\n")
    step = f"ls -A {package}"  # names the package directory, as `pip install /tmp/pkg` would
    built = await box.add_layer({"kind": "command", "spec": step, "iteration": 1, "workspace": "w"}, timeout=60)
    assert not built.ok and "No such file" in built.output
    later = await box.exec(step, timeout=10)
    assert not later.ok


async def test_cargo_credentials_and_config_stay_out_of_the_sandbox(tmp_path, monkeypatch):
    cargo = tmp_path / "fakehome" / ".cargo"
    (cargo / "bin").mkdir(parents=True)
    (cargo / "bin" / "cargo").write_text("#!/bin/sh\necho fake cargo\n")
    (cargo / "bin" / "cargo").chmod(0o755)
    (cargo / "credentials.toml").write_text("[registry]\ntoken = 'host-secret'\n")
    (cargo / "config.toml").write_text("[http]\nproxy = 'host-secret'\n")
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o644)
    monkeypatch.setenv("CARGO_HOME", str(cargo))
    monkeypatch.setenv("PATH", f"{cargo / 'bin'}:{os.environ['PATH']}")
    sandbox = LocalSandbox(SandboxSpec(template=get_template("python"), run_id="cargo"), limits=SAFE, isolation="bwrap")
    async with sandbox as box:
        found = await box.exec(f"cargo; ls -A {cargo}; cat {cargo}/credentials.toml {cargo}/config.toml", timeout=10)
    assert "fake cargo" in found.stdout  # the toolchain's binaries are there
    assert "host-secret" not in found.output
    assert "credentials.toml" not in found.stdout and "config.toml" not in found.stdout


async def test_without_bubblewrap_a_run_stops_before_any_model_call(monkeypatch, tmp_path, capsys):
    from devlooper import cli
    from devlooper.errors import ConfigError
    from tests.conftest import run_scripted

    monkeypatch.setattr(bwrap, "usable", lambda: (False, "bubblewrap cannot create a sandbox here: no namespaces"))
    with pytest.raises(ConfigError, match="cannot be isolated.*--isolation none") as err:
        await run_scripted({}, isolation="bwrap")  # no replies: a model call would fail differently
    assert "cassette" not in str(err.value)
    code = cli.main(["run", "x", "--model", "replay:nothing.json", "--output", str(tmp_path / "o")])
    assert code == 2 and "--isolation none" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


async def test_with_isolation_none_the_user_accepted_the_risk_and_it_runs(monkeypatch, output_dir):
    from tests.conftest import run_scripted

    monkeypatch.setattr(bwrap, "usable", lambda: (False, "bubblewrap (bwrap) is not installed"))
    plan = {"notes": "n", "files": [{"path": "test_one.py", "purpose": "a test"}], "packages": []}
    state = await run_scripted(
        {"plan_project": plan, "generate_file:test_one.py": "def test_one():\n    assert 1\n"},
        isolation="none", output_dir=str(output_dir),
    )
    assert state["status"] == "passed"


async def test_a_build_step_has_a_route_to_the_internet_and_none_to_private_networks(box):
    """Only the routing table is read: no traffic goes to any private or public address."""
    routes = await box.add_layer(
        {"kind": "command", "spec": "ip route show; ip -o addr show", "iteration": 1, "workspace": "routes"}, timeout=60
    )
    assert routes.ok, routes.output
    assert "default via 10.0.2.2" in routes.stdout  # slirp's gateway: outbound access
    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"):
        assert f"unreachable {private}" in routes.stdout
    test_run = await box.exec("ip -o addr show", timeout=10)
    assert "tap0" not in test_run.stdout  # tests: loopback only


async def test_the_host_never_writes_reads_or_deletes_through_a_link_in_the_workspace(box, tmp_path):
    from devlooper.paths import UnsafePathError

    target = victim(tmp_path)
    planted = await box.exec(f"ln -s {tmp_path} sub && ln -s {target} direct.txt", timeout=10)
    assert planted.ok
    with pytest.raises(UnsafePathError):
        await box.write_file("sub/new.txt", "through a link")
    with pytest.raises(OSError):
        await box.read_file("sub/host-file.txt")
    with pytest.raises(OSError):
        await box.read_file("direct.txt")
    await box.delete_file("sub/host-file.txt")
    await box.write_file("direct.txt", "replaces the link")
    assert target.read_text() == "host content\n" and sorted(p.name for p in tmp_path.iterdir()) == ["host-file.txt"]
    assert await box.read_file("direct.txt") == "replaces the link"
