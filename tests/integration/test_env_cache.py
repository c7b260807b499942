"""The local environment cache: reuse by prefix, one build under concurrency, no partial entries."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from devlooper.sandboxes import make_sandbox
from devlooper.templates.base import EnvTemplate

GENERIC = EnvTemplate(
    name="cache-test",
    description="an environment that is a directory",
    runtime="generic",
    image="debian:bookworm-slim",
    install_command="echo {packages} >> $DEVLOOPER_ENV/installed",
    test_command="true",
    manifest="none",
)


def layer(spec: str, kind: str = "command") -> dict:
    return {"kind": kind, "spec": spec, "iteration": 1}


def envs_root() -> Path:
    return Path(os.environ["DEVLOOPER_CACHE_DIR"]) / "envs"


async def test_concurrent_runs_build_a_layer_once_and_share_it(tmp_path):
    marker = f"echo built >> $DEVLOOPER_ENV/count && sleep 1 # {tmp_path.name}"
    boxes = [make_sandbox("local", GENERIC, run_id=f"c{i}") for i in range(3)]
    for box in boxes:
        await box.start()
    try:
        results = await asyncio.gather(*(box.add_layer(layer(marker), timeout=60) for box in boxes))
        assert all(r.ok for r in results), [r.output for r in results]
        assert len({box.env_dir for box in boxes}) == 1
        assert (boxes[0].env_dir / "count").read_text() == "built\n"
        assert sum(r.reused for r in results) == 2
        seen = await boxes[1].exec("cat $DEVLOOPER_ENV/count", timeout=10)
        assert seen.stdout == "built\n"
    finally:
        for box in boxes:
            await box.close()


async def test_a_later_run_reuses_the_cached_prefix(tmp_path):
    first = [layer(f"one-{tmp_path.name}", "install"), layer(f"two-{tmp_path.name}", "install")]
    async with make_sandbox("local", GENERIC, first) as box:
        assert (box.env_dir / "installed").read_text().split() == [f"one-{tmp_path.name}", f"two-{tmp_path.name}"]
        built = box.env_dir
    async with make_sandbox("local", GENERIC, first[:1]) as box:
        result = await box.add_layer(first[1], timeout=60)
        assert result.reused and box.env_dir == built
        other = await box.add_layer(layer(f"three-{tmp_path.name}", "install"), timeout=60)
        assert other.ok and box.env_dir != built
        assert (box.env_dir / "installed").read_text().split()[-1] == f"three-{tmp_path.name}"
        assert (built / "installed").read_text().split()[-1] == f"two-{tmp_path.name}"  # the prefix is untouched


async def test_a_failed_layer_leaves_no_entry_and_no_scratch(tmp_path):
    async with make_sandbox("local", GENERIC) as box:
        before = set(box.cache.root.iterdir())
        result = await box.add_layer(layer(f"echo half > $DEVLOOPER_ENV/half; exit 7 # {tmp_path.name}"), timeout=60)
        assert result.exit_code == 7 and box.layers == []
        after = {p for p in box.cache.root.iterdir() if not p.name.endswith(".lock")}
        assert after <= before
        assert not list(box.cache.root.glob(".build-*"))


async def test_tests_cannot_change_the_cached_environment(tmp_path):
    async with make_sandbox("local", GENERIC) as box:
        if not box.isolated:
            pytest.skip("only bubblewrap mounts the environment read-only")
        result = await box.exec("echo x > $DEVLOOPER_ENV/poison", timeout=10)
        assert result.exit_code != 0 and not (box.env_dir / "poison").exists()


BUILD_IN_A_PROCESS = """
import asyncio, sys
from devlooper.sandboxes import make_sandbox
from devlooper.templates.base import EnvTemplate
template = EnvTemplate.model_validate_json(sys.argv[1])
async def main():
    async with make_sandbox("local", template, run_id="proc") as box:
        result = await box.add_layer({"kind": "command", "spec": sys.argv[2], "iteration": 1}, timeout=60)
        assert result.ok, result.output
        print(box.env_dir)
asyncio.run(main())
"""


async def test_concurrent_processes_build_a_layer_once(tmp_path):
    import subprocess
    import sys

    command = f"echo built >> $DEVLOOPER_ENV/count && sleep 1 # {tmp_path.name}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD_IN_A_PROCESS, GENERIC.model_dump_json(), command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    dirs = {out.strip() for out, _ in outputs}
    assert len(dirs) == 1
    assert Path(dirs.pop(), "count").read_text() == "built\n"


# --- cache keys are content ---------------------------------------------------------------

from devlooper.sandboxes import workspace  # noqa: E402


def project_files(box) -> dict[str, str]:
    return {e.path: (box.workspace / e.path).read_text() for e in workspace.scan(box.workspace, box.template.not_project())}


async def test_a_command_layer_leaves_the_same_workspace_on_a_cold_and_a_warm_cache(tmp_path):
    files = {"old.txt": "old\n", "keep.txt": "keep\n"}
    command = (
        f"echo made > new.txt && echo more >> keep.txt && rm old.txt && echo x >> $DEVLOOPER_ENV/count "
        f"&& echo said && echo warned >&2 # {tmp_path.name}"
    )
    step = layer(command) | {"workspace": workspace.digest(files)}
    seen = []
    for run in ("cold", "warm"):
        async with make_sandbox("local", GENERIC, run_id=run) as box:
            await box.sync_files(files)
            result = await box.add_layer(step, timeout=60)
            assert result.ok, result.output
            assert result.reused == (run == "warm")
            # What the step printed is given again on reuse: the model reads the same either way.
            seen.append((project_files(box), (box.env_dir / "count").read_text(), result.output))
    assert seen[0] == seen[1] == ({"keep.txt": "keep\nmore\n", "new.txt": "made\n"}, "x\n", "said\nwarned")


async def test_a_command_layer_is_not_reused_for_other_project_files(tmp_path):
    """What a command did with one project (here: poison the environment) never reaches a run
    with other files, although the command's text is the same."""
    command = f"if test -f evil.txt; then echo poisoned > $DEVLOOPER_ENV/poison; fi # {tmp_path.name}"
    evil = {"evil.txt": "x"}
    async with make_sandbox("local", GENERIC, run_id="evil") as box:
        await box.sync_files(evil)
        assert (await box.add_layer(layer(command) | {"workspace": workspace.digest(evil)}, timeout=60)).ok
        assert (box.env_dir / "poison").exists()
    clean = {"lib.txt": "y"}
    async with make_sandbox("local", GENERIC, run_id="clean") as box:
        await box.sync_files(clean)
        result = await box.add_layer(layer(command) | {"workspace": workspace.digest(clean)}, timeout=60)
        assert result.ok and not result.reused
        assert not (box.env_dir / "poison").exists()


async def test_an_install_sees_an_empty_workspace_and_cannot_change_the_project(tmp_path):
    template = GENERIC.model_copy(
        update={"name": "sees", "install_command": 'ls -A > "$DEVLOOPER_ENV/seen"; touch planted; echo {packages}'}
    )
    async with make_sandbox("local", template, run_id="sees") as box:
        await box.sync_files({"secret.txt": "project"})
        result = await box.add_layer(layer(f"pkg-{tmp_path.name}", "install"), timeout=60)
        assert result.ok, result.output
        assert (box.env_dir / "seen").read_text() == ""
        assert project_files(box) == {"secret.txt": "project"}


async def test_a_local_package_changed_between_two_runs_is_seen_fresh(tmp_path):
    package = tmp_path / "helper"
    package.mkdir()
    (package / "version").write_text("1\n")
    for path in (tmp_path, package, package / "version"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    template = GENERIC.model_copy(
        update={
            "name": "local-pkg",
            "install_command": 'cat {packages}/version >> "$DEVLOOPER_ENV/installed"',
            "local_packages": {"helper": str(package)},
        }
    )
    installs = [layer("helper", "install")]
    async with make_sandbox("local", template, installs, run_id="first") as box:
        assert (box.env_dir / "installed").read_text() == "1\n"
    (package / "version").write_text("2\n")
    async with make_sandbox("local", template, installs, run_id="second") as box:
        assert (box.env_dir / "installed").read_text() == "2\n"
        seen = await box.exec(f"cat {package}/version", timeout=10)  # declared: visible, read-only
        assert seen.stdout == "2\n"
        assert (await box.exec(f"echo 3 > {package}/version", timeout=10)).exit_code != 0 or not box.isolated


async def test_only_installs_may_write_the_shared_download_caches(tmp_path):
    shared = Path(os.environ["DEVLOOPER_CACHE_DIR"]) / "pip"
    name = f"poison-{tmp_path.name}"
    template = GENERIC.model_copy(
        update={"name": "caches", "install_command": f'echo {{packages}} > "$PIP_CACHE_DIR/{name}-install"'}
    )
    async with make_sandbox("local", template, run_id="caches") as box:
        command = await box.add_layer(layer(f'echo x > "$PIP_CACHE_DIR/{name}-command"'), timeout=60)
        assert command.ok, command.output
        installed = await box.add_layer(layer("pkg", "install"), timeout=60)
        assert installed.ok, installed.output
    assert not (shared / f"{name}-command").exists()  # a command layer's cache is private
    assert (shared / f"{name}-install").exists()
    (shared / f"{name}-install").unlink()


async def test_an_environment_listing_runs_once_per_cached_environment(tmp_path):
    from devlooper.sandboxes.envcache import EnvCache

    # The listing prints something new each time it runs: a kept one is seen as the same text.
    listing = "cat $DEVLOOPER_ENV/installed; echo $RANDOM$RANDOM$RANDOM"
    steps = [layer(f"pkg-{tmp_path.name}", "install")]
    async with make_sandbox("local", GENERIC, steps) as box:
        first = await box.list_environment(listing, timeout=30)
        again = await box.list_environment(listing, timeout=30)
        assert first.ok and f"pkg-{tmp_path.name}" in first.stdout
        assert again.stdout == first.stdout and again.reused
        key = box.env_key
    async with make_sandbox("local", GENERIC, steps) as box:  # another run, on the warm cache
        assert (await box.list_environment(listing, timeout=30)).stdout == first.stdout
        await box.add_layer(layer(f"more-{tmp_path.name}", "install"), timeout=60)
        other = await box.list_environment(listing, timeout=30)  # another environment: listed afresh
        assert f"more-{tmp_path.name}" in other.stdout and not other.reused
    cache = EnvCache(envs_root())
    assert cache.remove(key)
    # A key built again may resolve its packages to other versions: its listing went with it.
    assert cache.kept_listing(key, listing) is None
