"""`devlooper template new`: a scripted model drafts a Node `node --test`
template; the check really builds it in the local sandbox and runs node."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from devlooper import ReplayChatModel
from devlooper.cli import main
from devlooper.synthesis import synthesize
from devlooper.templates import load_template
from tests.conftest import run_scripted

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

ADD = "exports.add = (a, b) => a + b;\n"
TEST = """const test = require('node:test');
const assert = require('node:assert');
const { add } = require('../add');
test('adds', () => { assert.strictEqual(add(2, 3), EXPECTED); });
"""


def draft(test_command: str) -> dict:
    return {
        "name": "node-test",
        "description": "Node.js 20 with the built-in test runner (node --test)",
        "runtime": "node",
        "image": "node:20-slim",
        "install_command": 'npm install --prefix "$DEVLOOPER_ENV" --no-audit --no-fund {packages}',
        "env_links": ["node_modules"],
        "test_command": test_command,
        "results": "junit",
        "results_file": ".devlooper-results.xml",
        "manifest": "package.json",
        "guidance": "CommonJS modules at the root; tests in test/*.test.js using node:test and node:assert.",
        "example_files": [
            {"path": "add.js", "content": ADD},
            {"path": "test/add.test.js", "content": TEST.replace("EXPECTED", "5")},
        ],
        "failing_files": [
            {"path": "add.js", "content": ADD},
            {"path": "test/add.test.js", "content": TEST.replace("EXPECTED", "6")},
        ],
    }


GOOD = "node --test --test-reporter=junit --test-reporter-destination=.devlooper-results.xml"
ALWAYS_GREEN = GOOD + " || true"


async def test_a_draft_that_cannot_fail_is_repaired_then_saved(tmp_path):
    seen: list[str] = []

    def repair(messages):
        seen.append(messages[-1].content)
        return draft(GOOD)

    model = ReplayChatModel.from_replies({"template_draft": draft(ALWAYS_GREEN), "template_repair:2": repair})
    done = await synthesize("Node 20 with node --test", model, attempts=3)

    first, second = done.attempts
    assert "exited 0 on failing_files" in first.problem
    assert "exited 0 on failing_files" in seen[0] and ALWAYS_GREEN in seen[0]  # the repair saw why
    assert second.problem is None and done.ok and done.template.test_command == GOOD


async def test_the_repair_loop_is_bounded():
    model = ReplayChatModel.from_replies({"template_*": draft("node --test --no-such-flag")})
    done = await synthesize("Node 20 with node --test", model, attempts=2)
    assert not done.ok and len(done.attempts) == 2
    assert all("on example_files, which must pass" in a.problem for a in done.attempts)


def test_cli_saves_a_template_the_loop_then_uses(tmp_path, output_dir, capsys):
    cassette = tmp_path / "cassette.json"
    cassette.write_text(json.dumps({"calls": [{"key": "template_draft", "reply": draft(GOOD)}]}))
    saved = tmp_path / "node-test.toml"
    args = ["template", "new", "Node 20 with node --test", "--output", str(saved), "--model", f"replay:{cassette}"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == str(saved)
    assert main(args) == 2  # an existing file is not replaced without --force

    template = load_template(saved)
    assert template.test_command == GOOD and "add.js" in template.example_files

    project = {"notes": "an adder", "files": [{"path": "add.js", "purpose": "add"},
                                               {"path": "test/add.test.js", "purpose": "tests"}]}
    broken = TEST.replace("EXPECTED", "5") + "test('adds negatives', () => { assert.strictEqual(add(-1, -1), -2); });\n"
    state = asyncio.run(run_scripted(
        {
            "plan_project": project,
            "generate_file:add.js": "exports.add = (a, b) => a - b;\n",
            "generate_file:test/add.test.js": broken,
            "diagnose:1": "add subtracts",
            "plan:1": {"summary": "add", "actions": [
                {"kind": "fix_file", "path": "add.js", "instructions": "add"},
                {"kind": "fix_file", "path": "node_modules/left-pad/index.js", "instructions": "patch a package"},
            ]},
            "fix_file:1:add.js": ADD,
        },
        template=str(saved),
        output_dir=str(output_dir),
    ))
    assert state["status"] == "passed" and state["iteration"] == 2
    first = state["test_runs"][0]
    assert (first["passed"], first["failed"]) == (0, 2)  # read from node's JUnit report
    assert {f["name"] for f in first["failures"]} == {"test::adds", "test::adds negatives"}
    assert "strictly equal" in first["failures"][0]["message"]
    refused = [r for r in state["action_results"] if r["target"].startswith("node_modules/")]
    assert len(refused) == 1 and not refused[0]["ok"] and "belongs to the environment" in refused[0]["output"]
    assert state["env_template"]["name"] == "node-test"  # the run no longer needs the file
    assert Path(output_dir, "add.js").read_text() == ADD
