"""One contract for every sandbox backend.

``local`` runs for real; ``e2b`` and ``modal`` run their adapters against fakes
of the SDKs whose calls are checked against the installed SDKs (see
``sdk_fakes``). The live variants run only where credentials are set.
"""

from __future__ import annotations

import os
import time

import pytest
from tests import sdk_fakes

from devlooper.paths import UnsafePathError
from devlooper.sandboxes import e2b as e2b_backend
from devlooper.sandboxes import make_sandbox
from devlooper.sandboxes import modal as modal_backend
from devlooper.templates.base import EnvTemplate

CONTRACT = EnvTemplate(
    name="contract",
    description="a template whose installs succeed unless the package is called 'broken'",
    runtime="generic",
    image="python:3.11-slim",
    install_command="test {packages} != broken",
    test_command="true",
    manifest="none",
    ignore=["cache"],
)

LIVE_KEYS = {name: os.environ.get(name) for name in ("E2B_API_KEY", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")}
BACKENDS = [
    "local",
    "local-plain",  # the fallback without bubblewrap
    "e2b-fake",
    "modal-fake",
    pytest.param("e2b-live", marks=[pytest.mark.live, pytest.mark.skipif(not LIVE_KEYS["E2B_API_KEY"], reason="E2B_API_KEY not set")]),
    pytest.param("modal-live", marks=[pytest.mark.live, pytest.mark.skipif(not LIVE_KEYS["MODAL_TOKEN_ID"], reason="MODAL_TOKEN_ID not set")]),
]


def layer(spec: str, iteration: int = 1) -> dict:
    return {"kind": "install", "spec": spec, "iteration": iteration}


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch) -> str:
    name = request.param
    if name == "local-plain":
        monkeypatch.setenv("DEVLOOPER_ISOLATION", "none")
    elif name == "e2b-fake":
        fake = sdk_fakes.fake_e2b_module()
        monkeypatch.setattr(e2b_backend, "_sdk", lambda: fake)
    elif name == "modal-fake":
        fake = sdk_fakes.fake_modal_module()
        monkeypatch.setattr(modal_backend, "_sdk", lambda: fake)
    elif name.endswith("-live"):
        for key, value in LIVE_KEYS.items():
            if value:
                monkeypatch.setenv(key, value)
    return name.split("-")[0]


@pytest.fixture
def make(backend):
    def build(layers=()):
        return make_sandbox(backend, CONTRACT, list(layers), run_id="contract")

    return build


async def test_files_round_trip(make):
    async with make() as box:
        await box.write_file("pkg/mod.py", "x = 1\n")
        await box.write_file("top.txt", "héllo\n")
        assert await box.read_file("pkg/mod.py") == "x = 1\n"
        assert await box.read_file("top.txt") == "héllo\n"
        listed = await box.exec("ls pkg && cat top.txt", timeout=30)
        assert listed.ok and listed.stdout == "mod.py\nhéllo\n"
        await box.delete_file("top.txt")
        await box.delete_file("top.txt")  # deleting what is gone is harmless
        with pytest.raises(FileNotFoundError):
            await box.read_file("top.txt")


async def test_paths_outside_the_workspace_are_refused(make):
    async with make() as box:
        for bad in ("../escape.txt", "/etc/passwd", ".git/config"):
            with pytest.raises(UnsafePathError):
                await box.write_file(bad, "x")


async def test_exit_code_is_data(make):
    async with make() as box:
        result = await box.exec("echo out; echo err >&2; exit 3", timeout=30)
        assert (result.exit_code, result.ok, result.timed_out, result.killed) == (3, False, False, None)
        assert result.stdout == "out\n" and result.stderr == "err\n"
        assert "out" in result.output and "err" in result.output


async def test_cwd_env_and_argv(make):
    async with make() as box:
        await box.write_file("sub/file.txt", "in sub\n")
        result = await box.exec("cat file.txt; echo $GREETING", timeout=30, cwd="sub", env={"GREETING": "hi"})
        assert result.ok and result.stdout == "in sub\nhi\n"
        argv = await box.exec(["printf", "%s|", "a b", "c"], timeout=30)
        assert argv.ok and argv.stdout == "a b|c|"


async def test_a_module_rewritten_in_the_same_second_is_what_the_next_command_imports(make):
    # Python trusts a cached .pyc whose source has the same mtime (in seconds) and size: a
    # fix that lands within the second of a test run, at the same size, would run the old
    # code. No backend may leave bytecode in the workspace for that.
    async with make() as box:
        await box.write_file("mod.py", "x = 1\n")
        first = await box.exec("python3 -c 'import mod; print(mod.x)' && stat -c %Y mod.py", timeout=60)
        assert first.ok, first.output
        value, mtime = first.stdout.split()
        await box.write_file("mod.py", "x = 2\n")
        await box.exec(f"touch -d @{mtime} mod.py", timeout=30)
        second = await box.exec("python3 -c 'import mod; print(mod.x)'", timeout=60)
        assert (value, second.stdout.strip()) == ("1", "2"), second.output


async def test_timeout_is_data_and_prompt(make):
    async with make() as box:
        started = time.monotonic()
        result = await box.exec("sleep 60", timeout=2)
        assert result.timed_out and result.killed == "timeout" and result.exit_code == 124
        assert not result.ok
        assert time.monotonic() - started < 2 + 8


async def test_stdin_is_closed(make):
    async with make() as box:
        started = time.monotonic()
        result = await box.exec("read -r line", timeout=20)
        assert result.exit_code == 1 and not result.timed_out
        assert time.monotonic() - started < 10


async def test_output_is_capped(make):
    async with make() as box:
        result = await box.exec("head -c 3000000 /dev/zero | tr '\\0' y; echo; echo END", timeout=60)
        assert result.ok and result.truncated and result.dropped > 0
        assert len(result.stdout) < 1_100_000
        assert result.stdout.startswith("yyyy") and result.stdout.endswith("END\n")


async def test_layers_success_and_failure(make):
    async with make() as box:
        ok = await box.add_layer(layer("good"), timeout=120)
        assert ok.ok, ok.output
        assert [x["spec"] for x in box.layers] == ["good"]
        bad = await box.add_layer(layer("broken", 2), timeout=120)
        assert not bad.ok and bad.exit_code != 0  # a failed install is data, never raised
        assert [x["spec"] for x in box.layers] == ["good"]
        await box.write_file("still.txt", "here\n")
        assert (await box.exec("cat still.txt", timeout=30)).stdout == "here\n"


async def test_layers_in_the_spec_are_replayed(make):
    async with make([layer("one"), layer("two")]) as box:
        assert [x["spec"] for x in box.layers] == ["one", "two"]
        assert (await box.exec("true", timeout=30)).ok


async def test_sync_files_writes_only_the_difference(make):
    async with make() as box:
        await box.sync_files({"a.txt": "a\n", "b/c.txt": "c\n"})
        await box.sync_files({"a.txt": "A\n"})
        result = await box.exec("cat a.txt; test -e b/c.txt && echo stale || echo gone", timeout=30)
        assert result.stdout == "A\ngone\n"


async def project_of(box) -> dict[str, str]:
    """The sandbox's project files as text, read through the backend's own listing."""
    entries = await box.list_project()
    assert all(e.kind == "file" for e in entries), entries
    return {e.path: (await box.read_project_bytes(e.path)).decode() for e in entries}


CHAOS = (
    "printf 'changed\\n' > a.txt && rm b/c.txt && printf 'new\\n' > gen/made.py && "
    "ln -s /etc/passwd link.txt && printf '\\377\\376' > blob.bin && mkfifo pipe && "
    "head -c 1000001 /dev/zero | tr '\\0' x > big.txt && mkdir -p cache && echo x > cache/built.o"
)


async def test_sync_files_undoes_what_code_changed_in_the_sandbox(make):
    files = {"a.txt": "a\n", "b/c.txt": "c\n"}
    async with make() as box:
        await box.sync_files(files)
        await box.exec("mkdir -p gen && " + CHAOS, timeout=60)
        await box.sync_files(files)  # what ran since is not trusted to have left the files alone
        assert await project_of(box) == files
        assert (await box.exec("cat cache/built.o", timeout=30)).stdout == "x\n"  # a build output stays


async def test_reconcile_takes_text_and_refuses_the_rest(make):
    files = {"a.txt": "a\n", "b/c.txt": "c\n", "keep.txt": "k\n"}
    async with make() as box:
        await box.sync_files(files)
        await box.exec("mkdir -p gen && " + CHAOS, timeout=60)
        drift = await box.reconcile(files)
        assert drift.changed == {"a.txt": "changed\n", "b/c.txt": None, "gen/made.py": "new\n"}
        assert set(drift.refused) == {"link.txt", "blob.bin", "pipe", "big.txt"}
        assert "link" in drift.refused["link.txt"] and "UTF-8" in drift.refused["blob.bin"]
        assert "more than" in drift.refused["big.txt"] and "link.txt" in drift.note()
        # The sandbox now holds exactly what was taken.
        assert await project_of(box) == {"a.txt": "changed\n", "keep.txt": "k\n", "gen/made.py": "new\n"}


async def test_a_refused_change_to_a_state_file_is_restored(make):
    async with make() as box:
        await box.sync_files({"a.txt": "a\n"})
        await box.exec("rm a.txt && ln -s /etc/passwd a.txt", timeout=30)
        drift = await box.reconcile({"a.txt": "a\n"})
        assert drift.changed == {} and set(drift.refused) == {"a.txt"}
        assert await project_of(box) == {"a.txt": "a\n"}


async def test_close_twice_is_harmless(make):
    box = make()
    await box.start()
    await box.close()
    await box.close()
