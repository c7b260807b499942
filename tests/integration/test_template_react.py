"""The react template for real: npm, Jest and jsdom in the local sandbox, a scripted model.

The environment (Jest, Babel, Testing Library, React) is built once per test
session and isolation mode: the session's cache directory keeps it, so only
the first test of each mode pays for the npm install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devlooper.paths import UnsafePathError
from devlooper.sandboxes import bwrap, make_sandbox
from devlooper.sandboxes.local import cache_root
from devlooper.templates import get_template
from tests.conftest import run_scripted

pytestmark = pytest.mark.skipif(not (shutil.which("node") and shutil.which("npm")), reason="node and npm are needed")

TEMPLATE = get_template("react")
PLAN = {
    "notes": "a counter button and its tests",
    "files": [{"path": "src/Counter.jsx", "purpose": "the component"}, {"path": "src/Counter.test.jsx", "purpose": "tests"}],
    "packages": [],
}
TESTS = """\
import { fireEvent, render, screen } from "@testing-library/react";
import Counter from "./Counter";

describe("Counter", () => {
  test("starts at its start value", () => {
    render(<Counter start={2} />);
    expect(screen.getByRole("button")).toHaveTextContent("Clicked 2 times");
  });

  test("counts clicks", () => {
    render(<Counter />);
    fireEvent.click(screen.getByRole("button"));
    fireEvent.click(screen.getByRole("button"));
    expect(screen.getByRole("button")).toHaveTextContent("Clicked 2 times");
  });
});
"""
GOOD = """\
import { useState } from "react";

export default function Counter({ start = 0 }) {
  const [count, setCount] = useState(start);
  return <button onClick={() => setCount(count + 1)}>Clicked {count} times</button>;
}
"""
BAD = GOOD.replace("count + 1", "count")  # clicks do nothing
# The same counter, never past 10, through a package from the registry.
CLAMPED = """\
import { useState } from "react";
import clamp from "lodash.clamp";

export default function Counter({ start = 0 }) {
  const [count, setCount] = useState(start);
  return <button onClick={() => setCount(clamp(count + 1, 0, 10))}>Clicked {count} times</button>;
}
"""


# A component that imports its styles and an image, as React projects do.
STYLED = {
    "src/Badge.css": ".badge { color: red; }\n",
    "src/Badge.jsx": 'import "./Badge.css";\nimport icon from "./icon.svg";\n\n'
    'export default function Badge({ label }) {\n  return <span className="badge"><img src={icon} alt="" />{label}</span>;\n}\n',
    "src/Badge.test.jsx": 'import { render, screen } from "@testing-library/react";\nimport Badge from "./Badge";\n\n'
    'test("shows its label", () => {\n  render(<Badge label="new" />);\n  expect(screen.getByText("new")).toBeInTheDocument();\n});\n',
}


def replies(component: str, **more) -> dict:
    return {"plan_project": PLAN, "generate_file:src/Counter.jsx": component, "generate_file:src/Counter.test.jsx": TESTS, **more}


@pytest.fixture(params=["bwrap", "none"], ids=["bwrap", "plain"])
def isolation(request, monkeypatch) -> str:
    if request.param == "bwrap" and not bwrap.usable()[0]:
        pytest.skip(bwrap.usable()[1])
    monkeypatch.setenv("DEVLOOPER_ISOLATION", request.param)
    return request.param


async def test_green_at_the_first_try(isolation: str, output_dir: Path):
    state = await run_scripted(replies(GOOD), "a counter button", template="react", output_dir=str(output_dir))
    assert state["status"] == "passed" and state["iteration"] == 1
    [run] = state["test_runs"]
    assert (run["passed"], run["failed"], run["failures"]) == (2, 0, [])
    # The output is the project: its files, the template's configs, the manifest and its lock;
    # node_modules stays in the environment.
    written = sorted(str(p.relative_to(output_dir)) for p in output_dir.rglob("*") if p.is_file())
    assert written == [
        ".devlooper/report.html", ".devlooper/report.json", "README.md", "babel.config.js", "jest.config.js",
        "jest.file-stub.js", "package-lock.json", "package.json", "src/Counter.jsx", "src/Counter.test.jsx",
    ]
    package = json.loads((output_dir / "package.json").read_text())
    assert package["scripts"]["test"] == "jest"
    assert set(package["dependencies"]) == {"react", "react-dom"}
    assert {"jest", "jest-environment-jsdom", "@testing-library/react"} <= set(package["devDependencies"])
    assert "node_modules/react" in json.loads((output_dir / "package-lock.json").read_text())["packages"]


async def test_the_templates_example_passes_and_tests_cannot_touch_the_environment(isolation: str):
    async with make_sandbox("local", TEMPLATE, [], run_id="react-example") as box:
        await box.sync_files({**TEMPLATE.setup_files, **TEMPLATE.example_files, **STYLED})
        result = await box.exec(TEMPLATE.test_command, timeout=120)
        assert result.ok, result.output
        assert "Tests:       2 passed, 2 total" in result.output
        # What installs made is read-only to the project's code (in bubblewrap), and the
        # model cannot write into it: node_modules is a link out of the workspace.
        if box.isolated:
            written = await box.exec("touch node_modules/react/index.js", timeout=30)
            assert not written.ok and "Read-only file system" in written.output
            # Tests have no network: npm fails at once instead of backing off for a minute.
            fetched = await box.exec('npm install --prefix "$TMPDIR/x" left-pad', timeout=120)
            assert not fetched.ok and fetched.duration < 15 and "npm error" in fetched.output
        with pytest.raises(UnsafePathError):
            await box.write_file("node_modules/react/index.js", "module.exports = {};\n")


async def test_red_with_named_failures_then_fixed(isolation: str, output_dir: Path):
    fix = {"summary": "clicks must count", "actions": [{"kind": "fix_file", "path": "src/Counter.jsx", "instructions": "add one"}]}
    seen = {}

    def diagnose(messages):
        seen["diagnose"] = messages[-1].content
        return "the click handler sets the same count"

    state = await run_scripted(
        replies(BAD, **{"diagnose:1": diagnose, "plan:1": fix, "fix_file:1:src/Counter.jsx": f"```jsx\n{GOOD}```"}),
        "a counter button",
        template="react",
        output_dir=str(output_dir),
    )
    assert state["status"] == "passed" and state["iteration"] == 2
    red, green = state["test_runs"]
    assert red["exit_code"] == 1 and (red["passed"], red["failed"]) == (1, 1)
    [failure] = red["failures"]
    assert failure["name"] == "src/Counter.test.jsx::Counter > counts clicks"
    assert "Expected element to have text content:\n  Clicked 2 times\nReceived:\n  Clicked 0 times" in failure["message"]
    assert "Counter > counts clicks" in seen["diagnose"]  # the model is told which test failed and why
    assert green["exit_code"] == 0 and green["passed"] == 2
    assert (output_dir / "src" / "Counter.jsx").read_text() == GOOD


async def test_an_installed_package_lands_in_package_json_and_the_lock(output_dir: Path):
    install = {"summary": "install lodash.clamp", "actions": [{"kind": "install", "packages": ["lodash.clamp@4"]}]}
    state = await run_scripted(
        replies(CLAMPED, **{"diagnose:1": "lodash.clamp is not installed", "plan:1": install}),
        "a counter button that stops at 10",
        template="react",
        output_dir=str(output_dir),
    )
    assert state["status"] == "passed" and state["iteration"] == 2
    [missing] = state["test_runs"][0]["failures"]
    assert missing["name"] == "src/Counter.test.jsx"  # the file could not run: one failure, named by its file
    assert "Cannot find module 'lodash.clamp'" in missing["message"]
    [layer] = state["layers"]
    assert layer == {"kind": "install", "spec": "lodash.clamp@4", "iteration": 1}
    # The state holds the manifest as it followed the install, and the output writes it.
    assert "lodash.clamp" in json.loads(state["files"]["package.json"])["dependencies"]
    manifest_edits = {e["path"] for e in state["edits"] if e["iteration"] == 1}
    assert manifest_edits == {"package.json", "package-lock.json"}
    package = json.loads((output_dir / "package.json").read_text())
    assert package["dependencies"]["lodash.clamp"].startswith("^4.")
    lock = json.loads((output_dir / "package-lock.json").read_text())
    assert "node_modules/lodash.clamp" in lock["packages"]
    assert_stands_alone(output_dir)


def assert_stands_alone(output_dir: Path) -> None:
    """The output, copied anywhere, installs from its lock and passes its tests with npm alone."""
    project = output_dir.parent / "elsewhere"
    shutil.copytree(output_dir, project)
    env = {**os.environ, "npm_config_cache": str(cache_root() / "npm"), "npm_config_update_notifier": "false"}
    installed = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    tested = subprocess.run(TEMPLATE.test_command, shell=True, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert json.loads((project / TEMPLATE.results_file).read_text())["numPassedTests"] == 2
    assert subprocess.run(["npm", "test", "--silent"], cwd=project, env=env, capture_output=True, timeout=300).returncode == 0


async def test_a_package_json_of_the_models_own_keeps_its_fields(output_dir: Path):
    """A model that writes package.json anyway keeps its name-independent fields and
    extra scripts; the environment's dependencies, versions and test script win."""
    own = {"description": "a counter", "scripts": {"test": "react-scripts test", "lint": "eslint src"},
           "dependencies": {"react": "^16.0.0"}}
    plan = {**PLAN, "files": [*PLAN["files"], {"path": "package.json", "purpose": "manifest"}]}
    state = await run_scripted(
        {**replies(GOOD), "plan_project": plan, "generate_file:package.json": json.dumps(own)},
        template="react",
        output_dir=str(output_dir),
    )
    assert state["status"] == "passed"
    package = json.loads((output_dir / "package.json").read_text())
    assert package["description"] == "a counter"
    assert package["scripts"] == {"test": "jest", "lint": "eslint src"}
    assert package["dependencies"]["react"].startswith("^19.")
