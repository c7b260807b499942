"""What the E2B and Modal adapters do beyond the contract, against the SDK fakes."""

from __future__ import annotations

import pytest
from tests import sdk_fakes

from devlooper.errors import ConfigError
from devlooper.sandboxes import e2b as e2b_backend
from devlooper.sandboxes import make_sandbox
from devlooper.sandboxes import modal as modal_backend
from devlooper.sandboxes.base import SandboxStartupError, layers_key
from devlooper.templates import get_template
from devlooper.templates.base import EnvTemplate

TEMPLATE = EnvTemplate(
    name="remote",
    description="setup and base packages recorded in a file",
    runtime="generic",
    image="python:3.11-slim",
    setup_commands=["echo setup >> /workspace/.steps"],
    base_packages=["base"],
    install_command="echo {packages} >> /workspace/.steps && test {packages} != broken",
    test_command="true",
    manifest="none",
)


def layer(spec: str) -> dict:
    return {"kind": "install", "spec": spec, "iteration": 1}


@pytest.fixture
def fake_e2b(monkeypatch):
    fake = sdk_fakes.fake_e2b_module()
    monkeypatch.setattr(e2b_backend, "_sdk", lambda: fake)
    monkeypatch.setenv("E2B_API_KEY", "e2b-test")
    return fake


@pytest.fixture
def fake_modal(monkeypatch):
    fake = sdk_fakes.fake_modal_module()
    monkeypatch.setattr(modal_backend, "_sdk", lambda: fake)
    return fake


def test_a_call_the_installed_sdk_would_reject_fails():
    import e2b

    with pytest.raises(TypeError, match="does not match the installed SDK"):
        sdk_fakes.check_call(e2b.AsyncSandbox.create, "create", None, (), {"tempalte": "base"}, aio=False)
    with pytest.raises(TypeError, match="no .aio"):
        sdk_fakes.check_call(lambda: None, "f", None, (), {}, aio=True)


async def test_e2b_builds_a_template_from_the_image_and_runs_everything_as_one_user(fake_e2b, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    sdk_fakes.CALLS.clear()
    async with make_sandbox("e2b", TEMPLATE, [layer("one")], run_id="r1") as box:
        assert await box.read_file(".steps") == "setup\nbase\none\n"
        assert (await box.add_layer(layer("two"), timeout=30)).ok  # in the live sandbox
        await box.exec("true", timeout=10)
    (sbx,) = fake_e2b.AsyncSandbox.created
    name = e2b_backend.template_name(TEMPLATE, [layer("one")])
    assert sbx.options["template"] == name and fake_e2b.AsyncTemplate.builds == [name]
    assert fake_e2b.AsyncTemplate.built[name]._base_image == TEMPLATE.image  # the template's image, not E2B's base
    assert sbx.options["allow_internet_access"] is True
    assert "envs" not in sbx.options  # nothing of the host's environment is handed over
    runs = [(args[0], kw) for name, args, kw in sdk_fakes.CALLS if name.endswith("Commands.run")]
    assert all("sk-host-secret" not in str(kw["envs"]) for _, kw in runs)
    assert {kw["user"] for _, kw in runs} == {"user"}  # layers and tests: one unprivileged user
    assert all(kw["background"] is True and kw["retain_output"] is False for _, kw in runs)
    # Only the step that makes the directories (and gives them to the user) is root's.
    steps = [i for i in fake_e2b.AsyncTemplate.built[name]._instructions if i["type"].value == "RUN"]
    assert [i["args"][1] for i in steps] == ["root", "user", "user", "user"]
    assert not sbx.machine.alive  # killed on close
    async with make_sandbox("e2b", TEMPLATE, [layer("one")], run_id="r2"):
        pass
    assert fake_e2b.AsyncTemplate.builds == [name]  # cached by the environment's key: not built again


async def test_e2b_uses_a_template_of_the_users_and_skips_what_it_has_baked_in(fake_e2b, monkeypatch):
    monkeypatch.setenv("DEVLOOPER_E2B_TEMPLATE", "devlooper-remote")
    layers = [layer("one"), layer("two")]
    fake_e2b.AsyncSandbox.user_templates["devlooper-remote"] = f"{layers_key(TEMPLATE, [])}\n{layers_key(TEMPLATE, layers[:1])}\n"
    async with make_sandbox("e2b", TEMPLATE, layers) as box:
        assert await box.read_file(".steps") == "two\n"  # only the layer the template lacks
        assert [x["spec"] for x in box.layers] == ["one", "two"]
    assert fake_e2b.AsyncSandbox.created[0].options["template"] == "devlooper-remote"
    assert fake_e2b.AsyncTemplate.builds == []


async def test_e2b_template_that_does_not_exist_is_a_startup_error(fake_e2b, monkeypatch):
    monkeypatch.setenv("DEVLOOPER_E2B_TEMPLATE", "nobody-built-this")
    with pytest.raises(SandboxStartupError, match="nobody-built-this.*does not exist"):
        async with make_sandbox("e2b", TEMPLATE):
            pass


def test_e2b_dockerfile_bakes_the_environment_and_marks_it():
    layers = [layer("requests")]
    text = e2b_backend.dockerfile(get_template("python"), layers)
    assert text.startswith("FROM python:3.11-slim\n")
    assert "pip install --disable-pip-version-check --no-input pytest" in text
    assert "pip install --disable-pip-version-check --no-input requests" in text
    assert layers_key(get_template("python"), layers) in text and e2b_backend.MARKER in text


# A node-like template: installs write into $DEVLOOPER_ENV, the project sees node_modules through a link.
LINKED = EnvTemplate(
    name="linked",
    description="an environment directory with a linked node_modules",
    runtime="node",
    setup_commands=['mkdir -p "$DEVLOOPER_ENV/node_modules/dep" && echo base > "$DEVLOOPER_ENV/node_modules/dep/index.js"'],
    install_command='echo {packages} >> "$DEVLOOPER_ENV/installed"',
    env_links=["node_modules"],
    test_command="cat node_modules/dep/index.js",
    manifest="package.json",
)


@pytest.mark.parametrize("backend", ["e2b", "modal"])
async def test_the_environment_dir_and_its_links_exist_remotely(backend, fake_e2b, fake_modal):
    async with make_sandbox(backend, LINKED, [layer("one")]) as box:
        tested = await box.exec(LINKED.test_command, timeout=30)
        assert tested.ok and tested.stdout == "base\n"  # node_modules in the workdir is the environment's
        await box.add_layer(layer("two"), timeout=30)
        assert await box.read_env_file("installed") == "one\ntwo\n"  # $DEVLOOPER_ENV, where installs write
        with pytest.raises(FileNotFoundError):
            await box.read_env_file("package.json")


def test_e2b_dockerfile_for_react_defines_the_environment_and_links_node_modules():
    text = e2b_backend.dockerfile(get_template("react"))
    assert text.startswith("FROM node:20-bookworm-slim\n")
    assert "DEVLOOPER_ENV=/opt/devlooper/env" in text.splitlines()[1]
    steps = [line for line in text.splitlines() if line.startswith("RUN ")]
    assert steps[0].endswith("ln -sfn /opt/devlooper/env/node_modules /workspace/node_modules")
    assert '> "$DEVLOOPER_ENV/package.json"' in steps[1]
    assert steps[-2].endswith('npm install --prefix "$DEVLOOPER_ENV" --no-audit --no-fund react@19 react-dom@19')


async def test_e2b_layer_failure_is_data(fake_e2b):
    async with make_sandbox("e2b", TEMPLATE) as box:
        result = await box.add_layer(layer("broken"), timeout=30)
        assert not result.ok and result.exit_code == 1 and box.layers == []


def test_e2b_without_a_key_is_a_config_error(monkeypatch):
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="E2B_API_KEY"):
        e2b_backend.E2BSandbox.check_config()


async def test_modal_builds_layers_into_images_and_blocks_the_network(fake_modal):
    async with make_sandbox("modal", TEMPLATE, [layer("one")]) as box:
        await box.write_file("src/app.py", "print(1)\n")
        first = fake_modal.Sandbox.created[0]
        assert first.options["block_network"] is True
        assert first.options["image"].steps[-2:] == (
            "( echo one >> /workspace/.steps && test one != broken ) < /dev/null",
            "WORKDIR /workspace",
        )
        result = await box.add_layer(layer("two"), timeout=60)
        assert result.ok, result.output
        second = fake_modal.Sandbox.created[-1]
        assert second is not first and not first.machine.alive  # moved to a sandbox from the new image
        assert await box.read_file("src/app.py") == "print(1)\n"  # files moved with it
        assert [x["spec"] for x in box.layers] == ["one", "two"]
        failed = await box.add_layer(layer("broken"), timeout=60)
        assert not failed.ok and "Image build failed" in failed.stderr
        assert fake_modal.Sandbox.created[-1] is second and [x["spec"] for x in box.layers] == ["one", "two"]
    assert not second.machine.alive


def test_modal_without_a_token_is_a_config_error(monkeypatch):
    fake = sdk_fakes.fake_modal_module(token=False)
    monkeypatch.setattr(modal_backend, "_sdk", lambda: fake)
    with pytest.raises(ConfigError, match="MODAL_TOKEN_ID.*modal token new"):
        modal_backend.ModalSandbox.check_config()


def test_modal_token_check_reads_the_real_config(monkeypatch, tmp_path):
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "none.toml"))
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    with pytest.raises(ConfigError):
        modal_backend.ModalSandbox.check_config()
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-x")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-x")
    modal_backend.ModalSandbox.check_config()


async def test_modal_runs_commands_in_the_live_sandbox_and_replays_them_after_an_install(fake_modal):
    """An image build step cannot see the project; a formatter must."""
    command = {"kind": "command", "spec": "sed -i s/draft/final/ doc.txt && echo ran >> $DEVLOOPER_ENV/cmd", "iteration": 1}
    async with make_sandbox("modal", TEMPLATE, []) as box:
        await box.sync_files({"doc.txt": "draft\n"})
        result = await box.add_layer(command, timeout=60)
        assert result.ok, result.output
        assert await box.read_file("doc.txt") == "final\n"  # it saw and changed the project
        assert not any(command["spec"] in step for steps in fake_modal.Image.builds for step in steps)
        first = box.sb
        assert (await box.add_layer(layer("two"), timeout=60)).ok
        assert box.sb is not first and not first.machine.alive  # a fresh sandbox from the new image
        assert [x["spec"] for x in box.layers] == [command["spec"], "two"]
        assert await box.read_file("doc.txt") == "final\n"  # the project moved with it
        # The command's change to the environment was replayed in the fresh sandbox.
        assert (await box.exec("cat $DEVLOOPER_ENV/cmd", timeout=30)).stdout == "ran\n"
