"""The whole loop with a scripted model, the real local sandbox and real pytest."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from tests.conftest import run_scripted

ADDER_PLAN = {
    "notes": "one module and its tests",
    "files": [{"path": "adder.py", "purpose": "add()"}, {"path": "tests/test_adder.py", "purpose": "tests"}],
    "packages": [],
}
TESTS = "from adder import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_zero():\n    assert add(0, 0) == 0\n"
GOOD = "def add(a, b):\n    return a + b\n"
BAD = "def add(a, b):\n    return a - b\n"
FIX = {"summary": "add must add", "actions": [{"kind": "fix_file", "path": "adder.py", "instructions": "use +"}]}


def replies(first: str, **more) -> dict:
    return {"plan_project": ADDER_PLAN, "generate_file:adder.py": first, "generate_file:tests/test_adder.py": TESTS, **more}


async def test_green_at_the_first_try(output_dir: Path):
    state = await run_scripted(replies(GOOD), output_dir=str(output_dir))
    assert state["status"] == "passed"
    assert state["iteration"] == 1
    assert [r["passed"] for r in state["test_runs"]] == [2]
    assert (output_dir / "adder.py").read_text() == GOOD
    assert (output_dir / "pytest.ini").exists()  # the template's own files are part of the project
    assert (output_dir / "requirements.txt").read_text().startswith("pytest==")
    report = json.loads((output_dir / ".devlooper" / "report.json").read_text())
    assert report["status"] == "passed" and report["iterations"] == 1
    assert report["usage"]["calls"] == 3
    assert set(report["timings"]) >= {"generate", "test"}


async def test_red_then_fixed(output_dir: Path):
    state = await run_scripted(
        replies(BAD, **{"diagnose:1": "add subtracts", "plan:1": FIX, "fix_file:1:adder.py": f"```python\n{GOOD}```"}),
        output_dir=str(output_dir),
    )
    assert state["status"] == "passed" and state["iteration"] == 2
    first, second = state["test_runs"]
    assert first["exit_code"] == 1 and first["failed"] == 1 and first["passed"] == 1
    assert "tests/test_adder.py::test_add" in first["failures"][0]["name"]
    assert second["exit_code"] == 0
    [edit] = state["edits"]
    assert edit["path"] == "adder.py" and edit["iteration"] == 1
    assert "-    return a - b" in edit["diff"] and "+    return a + b" in edit["diff"]
    assert (output_dir / "adder.py").read_text() == GOOD


async def test_never_fixed_stops_at_the_budget(output_dir: Path):
    never = {"diagnose:*": "still broken", "plan:*": FIX, "fix_file:*:adder.py": BAD.replace("-", "*")}
    state = await run_scripted(replies(BAD, **never), max_iterations=3, output_dir=str(output_dir))
    assert state["status"] == "gave_up"
    assert state["iteration"] == 3 and len(state["test_runs"]) == 3
    assert "--max-iterations 3" in state["reason"]
    report = json.loads((output_dir / ".devlooper" / "report.json").read_text())
    assert report["status"] == "gave_up" and report["iterations"] == 3


def make_wheel(directory: Path, name: str = "tinydep", body: str = "VALUE = 42\n") -> Path:
    """A minimal pure-Python wheel, so installs need no network."""
    wheel = directory / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{name}.py", body)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return wheel


def declaring(directory: Path, **packages: Path) -> str:
    """The python template with local packages declared (the only way a run installs one)."""
    import tomlkit

    from devlooper.templates import get_template

    data = get_template("python").model_dump(mode="json", exclude_none=True)
    data["name"] = "python-local"
    data["local_packages"] = {name: str(path) for name, path in packages.items()}
    path = directory / "python-local.toml"
    path.write_text(tomlkit.dumps(data))
    return str(path)


USES_DEP = "import tinydep\n\n\ndef add(a, b):\n    return a + b + tinydep.VALUE - 42\n"


async def test_an_install_action_adds_a_layer(tmp_path: Path, output_dir: Path):
    wheel = make_wheel(tmp_path)
    plan = {"summary": "install tinydep", "actions": [{"kind": "install", "packages": ["tinydep"]}]}
    state = await run_scripted(
        replies(USES_DEP, **{"diagnose:1": "tinydep is missing", "plan:1": plan}), output_dir=str(output_dir),
        template=declaring(tmp_path, tinydep=wheel),
    )
    assert state["status"] == "passed" and state["iteration"] == 2
    assert "ModuleNotFoundError" in state["test_runs"][0]["output"]
    [layer] = state["layers"]
    assert layer == {"kind": "install", "spec": "tinydep", "iteration": 1}
    assert "tinydep" in (output_dir / "requirements.txt").read_text()


async def test_a_failed_install_is_fed_back_not_raised(tmp_path: Path, output_dir: Path):
    wheel = make_wheel(tmp_path)
    missing = tmp_path / "no-such-1.0-py3-none-any.whl"
    seen: dict[str, str] = {}

    def diagnose_again(messages):
        seen["diagnose"] = messages[-1].content
        return "the previous install failed: the wheel path was wrong"

    def plan_again(messages):
        seen["plan"] = messages[-1].content
        return {"summary": "install the right wheel", "actions": [{"kind": "install", "packages": ["tinydep"]}]}

    state = await run_scripted(
        replies(
            USES_DEP,
            **{
                "diagnose:1": "tinydep is missing",
                "plan:1": {"summary": "install", "actions": [{"kind": "install", "packages": ["nosuch"]}]},
                "diagnose:2": diagnose_again,
                "plan:2": plan_again,
            },
        ),
        output_dir=str(output_dir),
        template=declaring(tmp_path, tinydep=wheel, nosuch=missing),
    )
    assert state["status"] == "passed" and state["iteration"] == 3
    failed = [r for r in state["action_results"] if r["kind"] == "install" and not r["ok"]]
    assert len(failed) == 1 and failed[0]["iteration"] == 1 and failed[0]["exit_code"] != 0
    assert len(state["layers"]) == 1  # the failed install left no layer behind
    assert "FAILED" in seen["diagnose"] and str(missing) in seen["diagnose"]
    assert "FAILED" in seen["plan"]


async def test_malformed_plans_and_escaping_paths_lose_nothing(tmp_path: Path, output_dir: Path):
    escape = {"summary": "x", "actions": [{"kind": "fix_file", "path": "../../outside.py", "instructions": "x"}]}
    state = await run_scripted(
        replies(
            BAD,
            **{"diagnose:*": "add subtracts", "plan:1*": escape, "plan:2": FIX, "fix_file:2:adder.py": GOOD},
        ),
        output_dir=str(output_dir),
    )
    assert state["status"] == "passed" and state["iteration"] == 3
    bad_plan = [r for r in state["action_results"] if r["kind"] == "plan"]
    assert bad_plan and "escapes the workspace" in bad_plan[0]["output"]
    assert not (tmp_path / "outside.py").exists() and not (output_dir.parent / "outside.py").exists()


async def test_files_can_be_created_and_deleted(output_dir: Path):
    split = {
        "summary": "move add into a package",
        "actions": [
            {"kind": "fix_file", "path": "mathlib/__init__.py", "instructions": "define add"},
            {"kind": "fix_file", "path": "adder.py", "instructions": "re-export"},
            {"kind": "delete_file", "path": "stale.py"},
        ],
    }
    plan = {**ADDER_PLAN, "files": [*ADDER_PLAN["files"], {"path": "stale.py", "purpose": "junk"}]}
    state = await run_scripted(
        {
            "plan_project": plan,
            "generate_file:adder.py": BAD,
            "generate_file:stale.py": "raise SystemExit('stale')\n",
            "generate_file:tests/test_adder.py": TESTS,
            "diagnose:1": "restructure",
            "plan:1": split,
            "fix_file:1:mathlib/__init__.py": GOOD,
            "fix_file:1:adder.py": "from mathlib import add  # noqa: F401\n",
        },
        output_dir=str(output_dir),
    )
    assert state["status"] == "passed"
    assert "stale.py" not in state["files"] and not (output_dir / "stale.py").exists()
    assert (output_dir / "mathlib" / "__init__.py").read_text() == GOOD
    kinds = {(e["path"], e["before"] is None, e["after"] is None) for e in state["edits"]}
    assert kinds == {("mathlib/__init__.py", True, False), ("adder.py", False, False), ("stale.py", False, True)}
