"""The sandbox registry, configuration checks, limits and the environment cache's rules."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
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


def test_local_needs_no_configuration_where_bubblewrap_works():
    if not bwrap.usable()[0]:
        pytest.skip(bwrap.usable()[1])
    sandbox_class("local").check_config(Context(layer_network=False))


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


def test_without_bubblewrap_the_local_check_says_why_and_what_to_do(monkeypatch):
    monkeypatch.setattr(bwrap, "usable", lambda: (False, "bubblewrap (bwrap) is not installed"))
    with pytest.raises(ConfigError) as err:
        local.LocalSandbox.check_config(Context(isolation="bwrap"))
    message = str(err.value)
    assert "bwrap) is not installed" in message and "--isolation none" in message and "\n" not in message
    local.LocalSandbox.check_config(Context(isolation="none"))  # the user accepted the risk
    with pytest.raises(ConfigError, match="unknown isolation 'auto'"):
        local.LocalSandbox.check_config(Context(isolation="auto"))


def test_the_sandbox_sees_only_system_dirs_a_minimal_etc_and_toolchains(monkeypatch, tmp_path):
    cargo = tmp_path / "home" / ".cargo"
    (cargo / "bin").mkdir(parents=True)
    (cargo / "credentials.toml").write_text("token = 'secret'")
    (cargo / "config.toml").write_text("")
    rustup = tmp_path / "home" / ".rustup"
    (rustup / "toolchains").mkdir(parents=True)
    (rustup / "settings.toml").write_text("")
    monkeypatch.setenv("CARGO_HOME", str(cargo))
    monkeypatch.setenv("RUSTUP_HOME", str(rustup))
    etc = bwrap.minimal_etc(tmp_path / "cache")
    argv = bwrap.wrap(
        ["true"], bwrap.Mounts(rw={"/tmp/ws": "/workspace"}, etc=str(etc)), workdir="/workspace",
        toolchains=[str(cargo / "bin")],
    )
    mounted = [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a in ("--ro-bind", "--bind", "--ro-bind-try")]
    binds = {inside for _, inside in mounted}
    # /etc is the sandbox's own copy, read-only; of the host's /etc only ETC's directories are bound.
    assert ("--ro-bind", str(etc), "/etc") in zip(argv, argv[1:], argv[2:], strict=False)
    host_etc = {host for host, _ in mounted if host.startswith("/etc")}
    assert host_etc == {f"/etc/{name}" for name in bwrap.ETC if os.path.isdir(f"/etc/{name}")}
    assert "--clearenv" in argv and "--die-with-parent" in argv and "--new-session" in argv
    assert "--share-net" not in argv and "/workspace" in binds
    assert str(cargo / "bin") in binds and str(cargo) not in binds
    assert {str(rustup / "toolchains"), str(rustup / "settings.toml")} <= binds and str(rustup) not in binds
    toolchains = {str(cargo / "bin"), str(rustup / "toolchains"), str(rustup / "settings.toml"),
                  os.path.realpath(sys.base_prefix)}  # the interpreter venvs are made from
    assert not any(b.startswith(("/root", "/home", "/opt", "/var", "/srv", "/mnt")) for b in binds - toolchains)
    assert "/etc/shadow" not in binds and "/etc/passwd" not in binds  # passwd is a copy, in the one /etc
    assert argv[argv.index("--remount-ro") + 1] == "/"  # the sandbox's own root is read-only
    assert all(b == "/etc" or b.startswith(("/usr", "/etc/", "/workspace", "/lib", "/bin", "/sbin")) for b in binds - toolchains), binds


def test_the_minimal_etc_copies_only_what_toolchains_read(tmp_path):
    etc = bwrap.minimal_etc(tmp_path)
    assert bwrap.minimal_etc(tmp_path) == etc and [p.name for p in tmp_path.iterdir()] == [etc.name]  # made once
    names = {p.name for p in etc.iterdir()}
    assert names <= set(bwrap.ETC) and "resolv.conf" in names  # a network step's resolv.conf binds over it
    assert "shadow" not in names and "sudoers" not in names
    for path in etc.iterdir():
        assert not path.is_symlink()  # a copy never leads back to the host's /etc
        if path.is_dir():
            assert not any(path.iterdir())  # the mount point of the host's directory, nothing more
        else:
            host = Path("/etc", path.name)
            assert path.read_bytes() == (host.read_bytes() if host.is_file() else b"")
        assert path.stat().st_mode & 0o777 in (0o644, 0o755)


def test_the_sandbox_tmp_is_always_private(tmp_path):
    for mounts in (bwrap.Mounts(), bwrap.Mounts(rw={str(tmp_path): "/tmp"})):
        argv = bwrap.wrap(["true"], mounts, workdir="/")
        onto_tmp = [argv[i:i + 3] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind", "--ro-bind-try")
                    and argv[i + 2] == "/tmp"]
        tmpfs = [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"]
        assert onto_tmp == [["--bind", str(tmp_path), "/tmp"]] if mounts.rw else tmpfs == ["/tmp"]
        assert not any(a == "/tmp" and argv[i - 1] in ("--bind", "--ro-bind") for i, a in enumerate(argv))


def test_copies_of_earlier_states_of_etc_go_once_unused_for_a_while(tmp_path):
    stale, recent = tmp_path / "etc-stale", tmp_path / "etc-recent"
    for old in (stale, recent):
        (old / "ssl").mkdir(parents=True)
    week_ago = time.time() - bwrap.ETC_KEEP - 60
    os.utime(stale, (week_ago, week_ago))
    current = bwrap.minimal_etc(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([current.name, "etc-recent"])
    os.utime(current, (week_ago, week_ago))  # reused: marked as used again, so never pruned while in use
    assert bwrap.minimal_etc(tmp_path) == current and time.time() - current.stat().st_mtime < 60


def test_without_a_minimal_etc_the_sandbox_sees_an_empty_one():
    argv = bwrap.wrap(["true"], bwrap.Mounts(), workdir="/")
    assert not any(a.startswith("/etc/") for a in argv)


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


def test_publish_is_atomic_and_keeps_its_metadata_outside_the_entry(tmp_path):
    cache = EnvCache(tmp_path)
    scratch = cache.scratch()
    scratch.mkdir()
    final = cache.publish(scratch, "key", "python", [{"kind": "install", "spec": "six", "iteration": 1}])
    assert final == tmp_path / "key" and not scratch.exists()
    assert cache.info("key")["layers"] == [{"kind": "install", "spec": "six"}]
    assert list(final.iterdir()) == [] and cache.ready("key")
    dead = tmp_path / ".build-999999999-dead"
    dead.mkdir()
    live = cache.scratch()
    live.mkdir()
    assert cache.clean_stale() == 1
    assert not dead.exists() and live.exists()


def test_metadata_is_written_beside_a_poisoned_entry_never_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("host file")
    cache = EnvCache(tmp_path / "cache")
    scratch = cache.scratch()
    scratch.mkdir()
    (scratch / ".devlooper-env.json").symlink_to(victim)  # what a build step could leave
    (scratch / "escape").symlink_to(tmp_path)
    cache.publish(scratch, "key", "python", [])
    assert victim.read_text() == "host file"
    assert cache.info("key")["template"] == "python"


def test_the_cache_is_pruned_least_recently_used_first(tmp_path, monkeypatch):
    monkeypatch.setattr("devlooper.sandboxes.envcache.IN_USE", 0.0)
    cache = EnvCache(tmp_path)
    for n, key in enumerate(["old", "mid", "new"]):
        scratch = cache.scratch()
        scratch.mkdir()
        (scratch / "blob").write_bytes(b"x" * 100_000)
        cache.publish(scratch, key, "t", [])
        os.utime(cache.meta_path(key), (1000 + n, 1000 + n))
    cache.touch("old")  # used now: the most recent
    size = cache.entries()[0].size
    assert [e.key for e in cache.entries()] == ["mid", "new", "old"]
    assert cache.prune(2 * size + 1, keep={"mid"}) == ["new"]
    assert sorted(e.key for e in cache.entries()) == ["mid", "old"]
    assert cache.clear() == 2 and cache.entries() == [] and list(tmp_path.glob("*.json")) == []


def test_relocate_rewrites_shebangs_and_pyvenv_cfg(tmp_path):
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "pytest").write_text("#!/old/place/bin/python\nimport pytest\n")
    (env / "pyvenv.cfg").write_text("home = /usr/bin\ncommand = /usr/bin/python -m venv /old/place\n")
    relocate(env, Path("/old/place"), env)
    assert (env / "bin" / "pytest").read_text().startswith(f"#!{env}/bin/python\n")
    assert str(env) in (env / "pyvenv.cfg").read_text()


def test_relocate_never_writes_through_a_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("#!/old/place/bin/python\nhost file\n")
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "evil").symlink_to(victim)
    (env / "pyvenv.cfg").symlink_to(victim)
    relocate(env, Path("/old/place"), Path("/new"))
    assert victim.read_text() == "#!/old/place/bin/python\nhost file\n"
    other = tmp_path / "other-env"
    other.mkdir()
    (other / "bin").symlink_to(tmp_path)  # bin itself a link to the host
    relocate(other, Path("/old/place"), Path("/new"))
    assert victim.read_text().startswith("#!/old/place")


def test_devlooper_cache_lists_entries_and_clears_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEVLOOPER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr("devlooper.sandboxes.envcache.IN_USE", 0.0)
    cache = EnvCache(tmp_path / "envs" / "bwrap")
    scratch = cache.scratch()
    scratch.mkdir()
    (scratch / "blob").write_bytes(b"x" * 300_000)
    cache.publish(scratch, "abc123", "python", [{"kind": "install", "spec": "six", "iteration": 1}])
    assert cli.main(["cache"]) == 0
    out = capsys.readouterr().out
    assert "abc123" in out and "python: install six" in out and "0.3" in out
    assert cli.main(["cache", "clear"]) == 0
    assert not (tmp_path / "envs" / "bwrap" / "abc123").exists() and cache.entries() == []


def test_local_settings_are_typed_and_serializable(monkeypatch):
    from devlooper.sandboxes.isolation import LocalSettings

    monkeypatch.setenv("DEVLOOPER_CACHE_MAX_MB", "123")
    settings = LocalSettings.from_env("none")
    data = settings.model_dump(mode="json")
    assert data["isolation"] == "none" and data["cache_max_mb"] == 123 and data["limits"]["memory_mb"] == 2048
    assert LocalSettings.model_validate(data) == settings
    monkeypatch.setenv("DEVLOOPER_CACHE_MAX_MB", "lots")
    with pytest.raises(ConfigError, match="DEVLOOPER_CACHE_MAX_MB"):
        LocalSettings.from_env("bwrap")
