"""read_docs on each template: the installed version's API reaches the next model call.

The react and rust cases need node/npm and cargo, and are skipped without them
(like tests/integration/test_template_react.py and test_template_rust.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import run_scripted
from tests.integration.test_template_rust import USES_HELPER, declaring, make_crate, replies as rust_replies

PY_PLAN = {
    "notes": "one module",
    "files": [{"path": "adder.py", "purpose": "add()"}, {"path": "tests/test_adder.py", "purpose": "tests"}],
    "packages": [],
}
PY_TESTS = "import pytest\nfrom adder import add\n\n\ndef test_add():\n    assert add(0.1, 0.2) == pytest.approx(0.3)\n"


def read(package: str, symbol: str | None = None, *more: dict) -> dict:
    return {"summary": "read the docs", "actions": [*more, {"kind": "read_docs", "package": package, "symbol": symbol}]}


def fix(path: str) -> dict:
    return {"summary": "fix it", "actions": [{"kind": "fix_file", "path": path, "instructions": "fix it"}]}


async def _run(replies: dict, template: str, output_dir: Path) -> tuple[dict, dict, list[str]]:
    """Run to green; the read_docs result of iteration 1, and the prompts of iteration 2."""
    seen: list[str] = []

    def diagnose(messages):
        seen.append(messages[-1].content)
        return "see the docs"

    def plan(messages):
        seen.append(messages[-1].content)
        return replies["plan:2"]

    state = await run_scripted(
        {**replies, "diagnose:2": diagnose, "plan:2": plan}, template=template, output_dir=str(output_dir)
    )
    assert state["status"] == "passed", state.get("reason")
    [docs] = [r for r in state["action_results"] if r["kind"] == "read_docs"]
    return state, docs, seen


async def test_python_read_docs_gives_the_installed_signatures_and_docstrings(output_dir: Path):
    replies = {
        "plan_project": PY_PLAN,
        "generate_file:adder.py": "def add(a, b):\n    return a - b\n",
        "generate_file:tests/test_adder.py": PY_TESTS,
        "diagnose:1": "what does approx take?",
        "plan:1": read("pytest", "approx"),
        "plan:2": fix("adder.py"),
        "fix_file:2:adder.py": "def add(a, b):\n    return a + b\n",
    }
    state, docs, seen = await _run(replies, "python", output_dir)
    pinned = next(line for line in (output_dir / "requirements.txt").read_text().splitlines() if line.startswith("pytest=="))
    assert docs["ok"] and docs["target"] == "pytest:approx"
    assert f"pytest {pinned.split('==')[1]} (installed)" in docs["output"]
    assert "approx(expected" in docs["output"] and "nan_ok" in docs["output"]  # the signature, as installed
    for prompt in seen:  # the next diagnosis and plan see it
        assert "docs of pytest:approx" in prompt and "approx(expected" in prompt


async def test_python_read_docs_of_a_missing_package_fails_as_data(output_dir: Path):
    replies = {
        "plan_project": PY_PLAN,
        "generate_file:adder.py": "def add(a, b):\n    return a - b\n",
        "generate_file:tests/test_adder.py": PY_TESTS,
        "diagnose:1": "?",
        "plan:1": read("no-such-package-here"),
        "plan:2": fix("adder.py"),
        "fix_file:2:adder.py": "def add(a, b):\n    return a + b\n",
    }
    _, docs, seen = await _run(replies, "python", output_dir)
    assert not docs["ok"] and "no installed module" in docs["output"]
    assert "docs of no-such-package-here (failed)" in seen[0]


@pytest.mark.skipif(not (shutil.which("node") and shutil.which("npm")), reason="node and npm are needed")
async def test_react_read_docs_gives_the_installed_type_definitions(output_dir: Path):
    from tests.integration.test_template_react import BAD, GOOD, PLAN, TESTS

    replies = {
        "plan_project": PLAN,
        "generate_file:src/Counter.jsx": BAD,
        "generate_file:src/Counter.test.jsx": TESTS,
        "diagnose:1": "how does render work?",
        "plan:1": read("@testing-library/react", "render"),
        "plan:2": fix("src/Counter.jsx"),
        "fix_file:2:src/Counter.jsx": GOOD,
    }
    state, docs, seen = await _run(replies, "react", output_dir)
    assert docs["ok"], docs["output"]
    assert "@testing-library/react 16." in docs["output"] and "--- render in" in docs["output"]
    assert "export function render" in docs["output"] or "declare function render" in docs["output"]
    assert "docs of @testing-library/react:render" in seen[0]


@pytest.mark.skipif(shutil.which("cargo") is None, reason="the rust template needs cargo")
async def test_rust_read_docs_gives_the_crate_source_and_doc_comments(tmp_path: Path, output_dir: Path):
    helper = make_crate(
        tmp_path / "crates", "helper", "//! Small arithmetic helpers.\n\n/// Multiplies two numbers.\npub fn times(a: u32, b: u32) -> u32 {\n    a * b\n}\n"
    )
    install = {"kind": "install", "packages": ["helper"]}  # declared in the template: a host path
    replies = rust_replies(
        USES_HELPER.replace("helper::times(w, h)", "helper::times(w, w)"),  # still wrong once helper is there
        **{
            "diagnose:1": "helper is missing; what does it offer?",
            "plan:1": read("helper", "times", install),
            "plan:2": fix("src/lib.rs"),
            "fix_file:2:src/lib.rs": USES_HELPER,
        },
    )
    template = str(declaring(tmp_path, "rust-helper", helper=helper))
    state, docs, seen = await _run(replies, template, output_dir)
    assert docs["ok"], docs["output"]
    assert "helper 0.2.0 (installed" in docs["output"]
    assert "/// Multiplies two numbers." in docs["output"] and "pub fn times(a: u32, b: u32)" in docs["output"]
    assert "//! Small arithmetic helpers." in docs["output"]
    assert "docs of helper:times" in seen[0]
