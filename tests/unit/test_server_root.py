"""A server client's paths stay under the server's root; the machine's user's do not have to."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from devlooper import Context, ReplayChatModel, graph, run
from devlooper.errors import CassetteError, ConfigError
from devlooper.server_root import SERVER_PACKAGE, ServerPathError, confine


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv("DEVLOOPER_SERVER_ROOT", str(root))
    return root


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as a LangGraph API server: the server's package is imported."""
    monkeypatch.setitem(sys.modules, SERVER_PACKAGE, ModuleType(SERVER_PACKAGE))


def counting_model() -> tuple[ReplayChatModel, list[str]]:
    calls: list[str] = []

    def reply(messages) -> str:
        calls.append("called")
        return "{}"

    return ReplayChatModel.from_replies({"*": reply}), calls


async def start(**context) -> list[str]:
    """Run the compiled server graph (no runner) as a client would; the model calls made."""
    model, calls = counting_model()
    await graph.ainvoke({"prompt": "x", "template": "python"}, context=Context(chat_model=model, **context))
    return calls


def confined(**context) -> Context:
    return confine(Context(**context))


@pytest.mark.usefixtures("serving")
async def test_an_output_outside_the_root_is_refused_before_any_model_call(root: Path, tmp_path: Path):
    model, calls = counting_model()
    with pytest.raises(ServerPathError, match="output_dir .* is outside the server's root"):
        await graph.ainvoke({"prompt": "x"}, context=Context(chat_model=model, output_dir=str(tmp_path / "out")))
    assert calls == [] and not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="outside the server's root"):
        await start(output_dir="../out")


@pytest.mark.usefixtures("serving")
async def test_a_link_inside_the_root_cannot_lead_out(root: Path, tmp_path: Path):
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="outside the server's root"):
        await start(output_dir="link/out")
    with pytest.raises(ConfigError, match="record .* is outside the server's root"):
        await start(record="link/cassette.json")
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.usefixtures("serving")
async def test_a_non_empty_output_is_refused_with_no_force(root: Path):
    (root / "taken").mkdir()
    (root / "taken" / "keep.txt").write_text("precious")
    with pytest.raises(ConfigError, match="not an empty directory; a server client cannot replace files"):
        await start(output_dir="taken")
    assert (root / "taken" / "keep.txt").read_text() == "precious"


@pytest.mark.usefixtures("serving")
def test_relative_paths_resolve_under_the_root(root: Path):
    ctx = confined(output_dir="runs/a", record="runs/a.json", model="replay:c.json")
    assert (ctx.output_dir, ctx.record) == (str(root / "runs" / "a"), str(root / "runs" / "a.json"))
    assert (root / "runs").is_dir()  # the cassette is written from the first model call on
    assert confined(output_dir=str(root / "b")).output_dir == str(root / "b")  # absolute, inside: kept
    assert confined(output_dir="~/x").output_dir == str(root / "~" / "x")  # not the server user's home
    with pytest.raises(ConfigError, match="outside the server's root"):
        confined(output_dir=str(root))  # the root itself holds every client's outputs


@pytest.mark.usefixtures("serving")
def test_without_a_configured_root_the_default_is_in_the_user_data_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("DEVLOOPER_SERVER_ROOT", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert confined(output_dir="a").output_dir == str(tmp_path / "data" / "devlooper" / "server" / "a")
    with pytest.raises(ConfigError, match="outside the server's root"):
        confined(output_dir=str(tmp_path / "a"))


def test_a_program_that_serves_no_clients_chooses_any_path(root: Path, tmp_path: Path):
    # The Python API: an embedder's own graph, in a process without the server.
    assert confined(output_dir=str(tmp_path / "out")).output_dir == str(tmp_path / "out")


@pytest.mark.usefixtures("serving")
async def test_the_runner_acts_for_the_machines_user_and_is_not_confined(root: Path, tmp_path: Path):
    cassette = tmp_path / "silent.json"
    cassette.write_text(json.dumps({"version": 1, "calls": []}))
    out = tmp_path / "out"
    # Past the path check, the run stops at its first model call, which the cassette cannot answer.
    with pytest.raises(CassetteError, match="no reply for call 'plan_project'"):
        await run("x", Context(model=f"replay:{cassette}", output_dir=str(out)), db=tmp_path / "db.sqlite")
    # The runner's mark ends with its run: the same task, driving the graph itself, is confined.
    with pytest.raises(ConfigError, match="outside the server's root"):
        await start(output_dir=str(out))
