"""Remote sandboxes over a run's life, against SDK fakes that enforce what a real
account does: images and templates, one user, lifetimes that end, reconnecting to
a parked sandbox, and provider faults that are never test output."""

from __future__ import annotations

import shutil

import e2b
import modal
import pytest
from tests import sdk_fakes
from tests.conftest import run_scripted

from devlooper.sandboxes import e2b as e2b_backend
from devlooper.sandboxes import make_sandbox, pool, remote
from devlooper.sandboxes import modal as modal_backend
from devlooper.sandboxes.base import SandboxAuthError, SandboxStartupError
from devlooper.templates import get_template
from devlooper.templates.base import EnvTemplate

TEMPLATE = EnvTemplate(
    name="remote",
    description="installs recorded in the environment",
    runtime="generic",
    image="python:3.11-slim",
    install_command='echo {packages} >> "$DEVLOOPER_ENV/installed" && test {packages} != broken',
    test_command="cat app.txt",
    manifest="none",
)


@pytest.fixture(params=["e2b", "modal"])
def backend(request, monkeypatch) -> str:
    monkeypatch.setattr(remote, "clock", sdk_fakes.CLOCK)  # lifetimes are measured on the providers' clock
    if request.param == "e2b":
        fake = sdk_fakes.fake_e2b_module()
        monkeypatch.setattr(e2b_backend, "_sdk", lambda: fake)
        monkeypatch.setenv("E2B_API_KEY", "e2b-test")
    else:
        fake = sdk_fakes.fake_modal_module()
        monkeypatch.setattr(modal_backend, "_sdk", lambda: fake)
    return request.param


def created(backend: str) -> list:
    return (sdk_fakes.FakeAsyncSandbox if backend == "e2b" else sdk_fakes.FakeModalSandbox).created


def layer(spec: str) -> dict:
    return {"kind": "install", "spec": spec, "iteration": 1}


# --- images and templates -----------------------------------------------------------
@pytest.mark.parametrize("image", ["node:20-bookworm-slim", "rust:1-slim", "debian:bookworm-slim"])
async def test_modal_adds_python_to_an_image_without_it(image, monkeypatch):
    fake = sdk_fakes.fake_modal_module()
    monkeypatch.setattr(modal_backend, "_sdk", lambda: fake)
    async with make_sandbox("modal", TEMPLATE.model_copy(update={"image": image})) as box:
        assert (await box.exec("true", timeout=30)).ok
    assert fake.Sandbox.created[0].options["image"].python


# The react harness (Jest, Babel, Testing Library) is installed twice per backend: the build, then the sandbox.
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("name", ["python", "rust", "react"])
async def test_each_builtin_template_builds_and_passes_its_example(name, backend):
    needs = {"rust": "cargo", "react": "npm"}.get(name)
    if needs and not shutil.which(needs):
        pytest.skip(f"{needs} is needed")
    template = get_template(name)
    async with make_sandbox(backend, template, run_id=f"example-{name}") as box:
        await box.sync_files({**template.setup_files, **template.example_files})
        result = await box.exec(template.test_command, timeout=600)
        assert result.ok, result.output[-3000:]
        homes = await box.exec('echo "$VIRTUAL_ENV|$CARGO_HOME|$npm_config_prefix"', timeout=30)
        home = {"python": 0, "rust": 1, "react": 2}[name]
        # The runtime's tool home is inside the environment directory (the fake maps it under its root).
        assert homes.stdout.strip().split("|")[home].endswith("/opt/devlooper/env" + ("/cargo" if name == "rust" else ""))


async def test_e2b_installs_and_tests_share_one_user_and_its_tool_home(monkeypatch):
    """What an install fetched is seen by the tests: the same user, the venv in the environment."""
    fake = sdk_fakes.fake_e2b_module()
    monkeypatch.setattr(e2b_backend, "_sdk", lambda: fake)
    template = get_template("python")
    async with make_sandbox("e2b", template) as box:
        assert (await box.add_layer(layer("six"), timeout=300)).ok
        result = await box.exec("python -c 'import six, sys; print(sys.prefix)'", timeout=60)
        assert result.ok and result.stdout.strip().endswith("/opt/devlooper/env"), result.output


# --- lifetimes ----------------------------------------------------------------------
async def test_a_sandbox_in_use_outlives_its_lifetime_and_a_lost_one_is_rebuilt(backend):
    """Every command takes 400 s of the provider's time; a sandbox lives 1000 s at most."""
    sdk_fakes.CLOCK.tick = 400
    (sdk_fakes.FakeAsyncSandbox if backend == "e2b" else sdk_fakes.FakeModalSandbox).max_lifetime = 1000
    async with make_sandbox(backend, TEMPLATE, [layer("one")]) as box:
        await box.sync_files({"app.txt": "v1\n"})
        for n in range(2, 8):
            result = await box.exec(TEMPLATE.test_command, timeout=30)
            assert result.ok and result.stdout == f"v{n - 1}\n", result.output  # never a failed test
            await box.write_file("app.txt", f"v{n}\n")
        assert (await box.add_layer(layer("two"), timeout=30)).ok
        assert (await box.exec('cat "$DEVLOOPER_ENV/installed"', timeout=30)).stdout == "one\ntwo\n"
        if backend == "e2b":  # extended while in use: one sandbox all along
            assert len(created(backend)) == 1 and box.revivals == 0
            assert created(backend)[0].timeouts  # set_timeout was called
        else:  # Modal's timeout is fixed at creation: the lost sandbox was rebuilt, files and layers with it
            assert box.revivals >= 1


async def test_a_run_longer_than_a_sandbox_lifetime_finishes_green(backend):
    sdk_fakes.CLOCK.tick = 400
    (sdk_fakes.FakeAsyncSandbox if backend == "e2b" else sdk_fakes.FakeModalSandbox).max_lifetime = 1000
    bad, good = "def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n"
    tests = "from adder import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    replies = {
        "plan_project": {"notes": "", "files": [{"path": "adder.py", "purpose": "add"}, {"path": "tests/test_adder.py", "purpose": "t"}], "packages": []},
        "generate_file:adder.py": bad,
        "generate_file:tests/test_adder.py": tests,
        "diagnose:*": "subtracts",
        "plan:1": {"summary": "fix", "actions": [{"kind": "fix_file", "path": "adder.py", "instructions": "+"}]},
        "fix_file:1:adder.py": good,
    }
    state = await run_scripted(replies, sandbox=backend, max_iterations=3)
    assert state["status"] == "passed", [r["output"] for r in state["test_runs"]]
    assert [r["exit_code"] for r in state["test_runs"]] == [1, 0]  # the red run is the code's, not the sandbox's
    assert sdk_fakes.CLOCK.now > 1000


# --- pause, resume, reconnect ----------------------------------------------------------
async def test_a_paused_run_reconnects_to_its_live_sandbox_and_rebuilds_an_expired_one(backend):
    files = {"app.txt": "state\n"}
    args = dict(layer_timeout=60)
    box = await pool.sandbox_for("run-p", backend, TEMPLATE, [layer("one")], files, **args)
    first = box.sandbox_id
    await box.exec("echo scratch > scratch.txt", timeout=30)
    await pool.pause("run-p")
    assert pool.live("run-p") is None and created(backend)[0].machine.alive  # parked, not killed
    # Answered soon: the same sandbox, brought to the state (what ran since the pause is undone).
    box = await pool.sandbox_for("run-p", backend, TEMPLATE, [layer("one")], files, **args)
    assert box.sandbox_id == first and len(created(backend)) == 1
    assert (await box.exec("cat app.txt; ls", timeout=30)).stdout == "state\napp.txt\n"
    box = await pool.sandbox_for("run-p", backend, TEMPLATE, [layer("one"), layer("two")], files, **args)
    assert (await box.exec('cat "$DEVLOOPER_ENV/installed"', timeout=30)).stdout == "one\ntwo\n"
    second = box.sandbox_id  # Modal moves to a sandbox of the new image; E2B installs in place
    await pool.pause("run-p")
    # Answered after the idle lifetime: the sandbox is gone and a new one is built from the state.
    sdk_fakes.CLOCK.advance(remote.IDLE_LIFETIME + 1)
    box = await pool.sandbox_for("run-p", backend, TEMPLATE, [layer("one"), layer("two")], files, **args)
    assert box.sandbox_id not in (first, second)
    assert (await box.exec("cat app.txt", timeout=30)).stdout == "state\n"
    assert (await box.exec('cat "$DEVLOOPER_ENV/installed"', timeout=30)).stdout == "one\ntwo\n"
    await pool.release("run-p")
    assert not created(backend)[-1].machine.alive  # the end of the run kills it


async def test_a_parked_sandbox_with_other_layers_is_not_reused(backend):
    box = await pool.sandbox_for("run-f", backend, TEMPLATE, [layer("one")], {}, layer_timeout=60)
    first = box.sandbox_id
    await pool.pause("run-f")
    box = await pool.sandbox_for("run-f", backend, TEMPLATE, [layer("other")], {}, layer_timeout=60)  # a fork
    assert box.sandbox_id != first
    await pool.release("run-f")


# --- faults --------------------------------------------------------------------------
async def test_a_sandbox_that_died_mid_run_is_rebuilt_not_reported(backend):
    async with make_sandbox(backend, TEMPLATE, [layer("one")]) as box:
        await box.sync_files({"app.txt": "kept\n"})
        created(backend)[-1].machine.destroy()  # the provider lost it
        result = await box.exec(TEMPLATE.test_command, timeout=30)
        assert result.ok and result.stdout == "kept\n"
        assert box.revivals == 1


def auth_fault(backend: str) -> BaseException:
    return e2b.AuthenticationException("401: invalid API key") if backend == "e2b" else modal.exception.AuthError("token revoked")


async def test_an_auth_error_mid_run_is_its_own_error(backend):
    async with make_sandbox(backend, TEMPLATE) as box:
        sdk_fakes.FAULTS.append(auth_fault(backend))
        with pytest.raises(SandboxAuthError):
            await box.exec(TEMPLATE.test_command, timeout=30)


async def test_an_auth_error_stops_the_run_instead_of_failing_its_tests(backend):
    sdk_fakes.FAULTS.extend([None] * 12 + [auth_fault(backend)])
    replies = {
        "plan_project": {"notes": "", "files": [{"path": "m.py", "purpose": "m"}], "packages": []},
        "generate_file:m.py": "X = 1\n",
    }
    with pytest.raises(SandboxAuthError):
        await run_scripted(replies, sandbox=backend)


async def test_an_e2b_request_timeout_is_not_a_test_timeout(monkeypatch):
    fake = sdk_fakes.fake_e2b_module()
    monkeypatch.setattr(e2b_backend, "_sdk", lambda: fake)
    async with make_sandbox("e2b", TEMPLATE) as box:
        sdk_fakes.FAULTS.append(e2b.TimeoutException("Request timed out"))
        with pytest.raises(remote.SandboxError, match="Request timed out") as raised:
            await box.exec("true", timeout=30)
        assert not isinstance(raised.value, SandboxStartupError)


async def test_an_e2b_command_past_its_timeout_is_killed(monkeypatch):
    fake = sdk_fakes.fake_e2b_module()
    monkeypatch.setattr(e2b_backend, "_sdk", lambda: fake)
    async with make_sandbox("e2b", TEMPLATE) as box:
        result = await box.exec("sleep 30", timeout=1)
        assert result.timed_out and result.exit_code == 124
        handle = fake.AsyncSandbox.created[0].commands.handles[-1]
        assert handle.killed and handle.proc.returncode is not None  # not left running into the next command


@pytest.mark.parametrize("expired", [False, True], ids=["answered-soon", "answered-late"])
async def test_a_paused_run_resumes_on_its_parked_sandbox_or_a_new_one(backend, expired, tmp_path):
    """The pause parks the sandbox; the resume reconnects to it, or rebuilds once it expired."""
    from devlooper import Context
    from devlooper.runner import resume, run
    from tests.integration.test_cli_loop import cassette as loop_cassette
    from tests.integration.test_loop import GOOD
    from tests.integration.test_loop_memory import fix

    model = loop_cassette(tmp_path)  # the model keeps multiplying until a human answers
    db, out = tmp_path / "db.sqlite", tmp_path / "out"
    context = Context(model=model, interactive=True, output_dir=str(out), sandbox=backend)
    paused = await run("a tiny library", context, thread_id="ask", db=db)  # nobody to ask: it stays paused
    assert paused["interrupt"]["kind"] == "plan"  # first at the generation plan: approve it, leave the loop's question
    paused = await resume("ask", db=db, ask=lambda q: "yes" if q.get("kind") == "plan" else None)
    n = paused["interrupt"]["iteration"]
    # The resume reads the cassette again: after the answer, the fix.
    # (Scripted for the next iteration too: under a loaded machine the fakes have paused a run one
    # iteration apart; what this test checks is the sandbox, not the iteration.)
    answer = {f"plan:{i}": fix("use + as the human said") for i in (n, n + 1)}
    answer |= {f"fix_file:{i}:adder.py": GOOD for i in (n, n + 1)}
    loop_cassette(tmp_path, **answer)
    count, parked = len(created(backend)), created(backend)[-1]
    assert parked.machine.alive  # parked for the answer, not killed
    if expired:
        sdk_fakes.CLOCK.advance(remote.IDLE_LIFETIME + 1)
    final = await resume("ask", db=db, ask=lambda q: "add must return a + b")
    assert final["status"] == "passed" and (out / "adder.py").read_text() == GOOD
    assert len(created(backend)) == count + (1 if expired else 0)  # reconnected, or rebuilt from the state
    assert not any(s.machine.alive for s in created(backend))  # the end of the run killed it
