"""The resident sandbox process: commands of a started sandbox run in one bubblewrap.

Each command is a fork inside the sandbox's namespaces; what it leaves behind is
killed before the next one starts, and a command that attacks the process that
runs it gets a failed result, never a hung or crashed run.
"""

from __future__ import annotations

import asyncio

import pytest

from devlooper.sandboxes import bwrap
from devlooper.sandboxes.base import SandboxSpec
from devlooper.sandboxes.limits import Limits
from devlooper.sandboxes.local import LocalSandbox
from devlooper.templates import get_template

USABLE, WHY = bwrap.usable()
pytestmark = pytest.mark.skipif(not USABLE, reason=f"the resident sandbox needs bubblewrap: {WHY}")

SAFE = Limits(memory_mb=300, address_space_mb=2048, processes=64, file_size_mb=64)


@pytest.fixture
async def box():
    sandbox = LocalSandbox(SandboxSpec(template=get_template("python"), run_id="resident"), limits=SAFE, isolation="bwrap")
    async with sandbox:
        assert await sandbox.resident_ready(), sandbox.resident_off
        yield sandbox


async def parent_of_command(box: LocalSandbox) -> str:
    result = await box.exec("echo $PPID", timeout=30)
    assert result.ok, result.output
    return result.stdout.strip()


async def test_commands_of_a_started_sandbox_share_one_sandbox_process(box):
    assert box.resident_off is None
    first, second = await parent_of_command(box), await parent_of_command(box)
    assert first == second  # the same helper forked both


async def test_the_first_command_does_not_wait_for_the_sandbox_process():
    sandbox = LocalSandbox(SandboxSpec(template=get_template("python"), run_id="first"), limits=SAFE, isolation="bwrap")
    async with sandbox:
        # Right after the start, while the sandbox process starts, a command gets a bubblewrap
        # of its own (as one that comes while another runs): the same view, and its result.
        first = await sandbox.exec("test -d /env && pwd", timeout=30)
        assert first.ok and first.stdout.strip() == sandbox.template.workdir, first.output
        assert await sandbox.resident_ready()
        assert await parent_of_command(sandbox) == await parent_of_command(sandbox)


async def test_what_a_command_leaves_running_is_gone_before_the_next_one(box):
    started = await box.exec("sleep 300 & sleep 300 & disown; setsid sleep 300 & echo started", timeout=30)
    assert started.ok and "started" in started.stdout
    # Inside, pid 1 is bubblewrap's init and the helper is the only other process but this one.
    ps = await box.exec("ls /proc | grep -E '^[0-9]+$' | wc -l; cat /proc/[0-9]*/comm", timeout=30)
    assert "sleep" not in ps.stdout, ps.stdout


async def test_a_timeout_kills_the_command_and_the_next_one_runs(box):
    result = await box.exec("sleep 300", timeout=1)
    assert result.timed_out and result.killed == "timeout"
    assert (await box.exec("echo ok", timeout=30)).stdout.strip() == "ok"


async def test_a_command_that_kills_the_sandbox_process_fails_and_the_next_one_runs(box):
    result = await box.exec("kill -9 $PPID; sleep 1", timeout=30)
    assert not result.ok
    assert "sandbox process" in result.output
    assert (await box.exec("echo ok", timeout=30)).stdout.strip() == "ok"


async def test_a_command_that_stops_the_sandbox_process_is_ended_by_the_host(box, monkeypatch):
    from devlooper.sandboxes import resident

    monkeypatch.setattr(resident, "BACKSTOP", 0.5)
    result = await box.exec("kill -STOP $PPID; sleep 300", timeout=1)
    assert result.timed_out and not result.ok
    assert (await box.exec("echo ok", timeout=30)).stdout.strip() == "ok"


async def test_a_command_cannot_reach_the_pipes_of_the_process_that_runs_it(box):
    result = await box.exec("ls /proc/$PPID/fd && echo fake > /proc/$PPID/fd/1", timeout=30)
    assert not result.ok
    assert "Permission denied" in result.output, result.output
    assert (await box.exec("echo ok", timeout=30)).stdout.strip() == "ok"


async def test_commands_at_the_same_time_all_run_contained(box):
    results = await asyncio.gather(*(box.exec(f"echo {i}; sleep 0.2", timeout=30) for i in range(4)))
    assert [r.stdout.strip() for r in results] == ["0", "1", "2", "3"]
    assert all(r.ok for r in results)


async def test_a_new_layer_starts_a_sandbox_process_that_sees_its_environment(box):
    await parent_of_command(box)  # the sandbox process of the first environment is running
    await box.add_layer({"kind": "command", "spec": "touch /env/marker", "iteration": 1}, timeout=60)
    result = await box.exec("test -e /env/marker && echo seen", timeout=30)
    assert result.stdout.strip() == "seen", result.output


async def test_a_new_layer_restarts_the_sandbox_process_in_the_background(box):
    before = box._resident
    assert before is not None and before.alive
    await box.add_layer({"kind": "command", "spec": "touch /env/marker2", "iteration": 1}, timeout=60)
    # No command has come yet: the process for the new environment is started already.
    assert await box.resident_ready()
    after = box._resident
    assert after is not before and not before.alive
    result = await box.exec("test -e /env/marker2 && echo $PPID", timeout=30)
    assert result.ok and result.stdout.strip() == await parent_of_command(box), result.output
    assert box._resident is after  # the commands ran in it, not in yet another one


async def test_limits_apply_to_each_command_of_the_sandbox_process(box):
    result = await box.exec("ulimit -u; ulimit -f", timeout=30)
    assert result.ok
    nproc, fsize = result.stdout.split()
    assert int(nproc) == SAFE.processes
    assert int(fsize) * 1024 == SAFE.file_size_mb * (1 << 20)
