"""The sandbox registry, configuration checks, limits and the environment cache's rules."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devlooper import cli
from devlooper.context import Context
from devlooper.errors import ConfigError
from devlooper.sandboxes import BACKENDS, bwrap, local, sandbox_class
from devlooper.sandboxes.envcache import EnvCache, relocate
from devlooper.sandboxes.limits import Limits, classify


def test_registry_names_the_three_backends_and_imports_them_lazily():
    assert list(BACKENDS) == ["local", "e2b", "modal"]
    code = "import sys, devlooper.sandboxes, devlooper.cli; print('e2b' in sys.modules, 'modal' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert out.stdout.strip() == "False False", out.stderr
    assert sandbox_class("e2b").__name__ == "E2BSandbox"
    assert sandbox_class("modal").__name__ == "ModalSandbox"


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown sandbox 'docker'; known: local, e2b, modal"):
        sandbox_class("docker")


def test_local_needs_no_configuration():
    sandbox_class("local").check_config()


@pytest.mark.parametrize(
    ("backend", "needle"), [("e2b", "E2B_API_KEY"), ("modal", "MODAL_TOKEN_ID")]
)
def test_cli_exits_2_with_one_line_when_a_backend_lacks_credentials(backend, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "no-modal.toml"))
    code = cli.main(["run", "x", "--sandbox", backend, "--model", "replay:x.json", "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_layer_network_is_a_context_field_with_an_env_fallback(monkeypatch):
    assert Context().layer_network is True
    monkeypatch.setenv("DEVLOOPER_LAYER_NETWORK", "false")
    assert Context().layer_network is False
    monkeypatch.setenv("DEVLOOPER_LAYER_NETWORK", "1")
    assert Context().layer_network is True


@pytest.mark.parametrize(
    ("code", "stderr", "kill"),
    [
        (-24, b"", "cpu"),
        (128 + 24, b"", "cpu"),
        (128 + 25, b"", "file_size"),
        (1, b"Traceback ...\nMemoryError\n", "memory"),
        (1, b"AssertionError\n", None),
        (254, b"bash: fork: Resource temporarily unavailable\n", "processes"),
        (0, b"MemoryError mentioned in a passing run\n", None),
        (124, b"", None),
    ],
)
def test_classify_names_the_limit_that_ended_a_command(code, stderr, kill):
    assert classify(code, stderr) == kill


def test_limits_become_prlimit_options():
    args = Limits(memory_mb=100, address_space_mb=512, cpu_seconds=7, processes=32, file_size_mb=8).prlimit_args(60)
    assert args == ["--cpu=7:8", f"--as={512 << 20}", "--nproc=32", f"--fsize={8 << 20}"]
    derived = Limits(cpu_seconds=None).cpu_for(10)
    assert derived >= 10  # never below the wall-clock budget


def test_limits_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEVLOOPER_LIMIT_MEMORY_MB", "512")
    monkeypatch.setenv("DEVLOOPER_LIMIT_ADDRESS_SPACE_MB", "0")
    limits = Limits.from_env()
    assert limits.memory_mb == 512 and limits.address_space_mb is None and limits.processes == 512
    assert not any(a.startswith("--as=") for a in limits.prlimit_args(10))
    monkeypatch.setenv("DEVLOOPER_LIMIT_PROCESSES", "many")
    with pytest.raises(ConfigError, match="DEVLOOPER_LIMIT_PROCESSES"):
        Limits.from_env()


def test_fallback_is_announced_once(monkeypatch, caplog):
    monkeypatch.setattr(bwrap, "usable", lambda: (False, "bubblewrap (bwrap) is not installed"))
    monkeypatch.setattr(local, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="devlooper.sandbox"):
        assert local.resolve_isolation("auto") is False
        assert local.resolve_isolation("auto") is False
    assert len(caplog.records) == 1 and "plain subprocess" in caplog.records[0].getMessage()
    assert local.resolve_isolation("none") is False
    with pytest.raises(Exception, match="bwrap"):
        local.resolve_isolation("bwrap")


def test_hidden_homes_are_replaced_and_toolchains_bound_back(monkeypatch):
    argv = bwrap.wrap(["true"], bwrap.Mounts(rw={"/tmp/ws": "/workspace"}), network=False, workdir="/workspace")
    joined = " ".join(argv)
    assert "--dir /root" in joined and "--ro-bind /root /root" not in joined
    assert "--clearenv" in argv and "--die-with-parent" in argv and "--new-session" in argv
    assert "--share-net" not in argv and "--bind /tmp/ws /workspace" in joined
    with_net = bwrap.wrap(["true"], bwrap.Mounts(), network=True, workdir="/")
    assert "--share-net" in with_net or "--unshare-net" not in with_net


async def test_concurrent_builders_of_one_key_take_turns(tmp_path):
    cache = EnvCache(tmp_path)
    order: list[str] = []

    async def builder(name: str) -> None:
        async with cache.locked("k"):
            order.append(f"{name}+")
            await asyncio.sleep(0.3)
            order.append(f"{name}-")

    await asyncio.gather(builder("a"), builder("b"))
    assert order in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])


def test_publish_is_atomic_and_stale_scratch_is_removed(tmp_path):
    cache = EnvCache(tmp_path)
    scratch = cache.scratch()
    scratch.mkdir()
    final = cache.publish(scratch, "key", "python", [{"kind": "install", "spec": "six", "iteration": 1}])
    assert final == tmp_path / "key" and not scratch.exists()
    assert json.loads((final / ".devlooper-env.json").read_text())["layers"] == [{"kind": "install", "spec": "six"}]
    dead = tmp_path / ".build-999999999-dead"
    dead.mkdir()
    live = cache.scratch()
    live.mkdir()
    assert cache.clean_stale() == 1
    assert not dead.exists() and live.exists()


def test_relocate_rewrites_shebangs_and_pyvenv_cfg(tmp_path):
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "pytest").write_text("#!/old/place/bin/python\nimport pytest\n")
    (env / "pyvenv.cfg").write_text("home = /usr/bin\ncommand = /usr/bin/python -m venv /old/place\n")
    relocate(env, Path("/old/place"), env)
    assert (env / "bin" / "pytest").read_text().startswith(f"#!{env}/bin/python\n")
    assert str(env) in (env / "pyvenv.cfg").read_text()
