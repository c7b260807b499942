"""The local backend's settings (isolation, limits, cache directory) are saved with the
run: a resume in another shell, with other DEVLOOPER_* variables, reproduces them."""

from __future__ import annotations

from devlooper import Context
from devlooper.nodes.common import sandbox_of
from devlooper.sandboxes.pool import release_all
from tests.conftest import run_scripted
from tests.integration.test_loop import GOOD, replies


async def test_a_resume_builds_its_sandbox_with_the_settings_the_run_recorded(monkeypatch, output_dir):
    monkeypatch.setenv("DEVLOOPER_LIMIT_PROCESSES", "300")
    monkeypatch.setenv("DEVLOOPER_CACHE_MAX_MB", "4096")
    state = await run_scripted(replies(GOOD), output_dir=str(output_dir))
    recorded = state["sandbox_settings"]
    assert recorded["backend"] == "local" and recorded["isolation"] == "bwrap"
    assert recorded["local"]["limits"]["processes"] == 300 and recorded["local"]["cache_max_mb"] == 4096

    # Later, in a shell with other variables: the run's own settings win.
    monkeypatch.setenv("DEVLOOPER_LIMIT_PROCESSES", "100")
    monkeypatch.setenv("DEVLOOPER_CACHE_MAX_MB", "1")
    try:
        box = await sandbox_of(state, Context(isolation="bwrap"))
        assert box.settings.limits.processes == 300 and box.settings.cache_max_mb == 4096
        assert (await box.exec("ulimit -u", timeout=30)).stdout.strip() == "300"
    finally:
        await release_all()
