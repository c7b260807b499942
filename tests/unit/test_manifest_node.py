"""The node manifest: package.json and its lock from the environment, merged with the project's own."""

from __future__ import annotations

import json

from devlooper.manifest import build_manifest, node_package
from devlooper.templates import get_template

TEMPLATE = get_template("react")
ENV_PACKAGE = {
    "name": "devlooper-project",
    "version": "1.0.0",
    "private": True,
    "scripts": {"test": "jest"},
    "devDependencies": {"jest": "^30.5.2"},
    "dependencies": {"react": "^19.3.1", "lodash.clamp": "^4.0.3"},
}
LOCK = '{"lockfileVersion": 3, "packages": {"node_modules/react": {"version": "19.3.1"}}}\n'


class EnvFiles:
    """Just what the builder reads of a sandbox: files of its environment directory."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    async def read_env_file(self, path: str) -> str:
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path]


BOX = EnvFiles({"package.json": json.dumps(ENV_PACKAGE), "package-lock.json": LOCK})


async def test_without_a_package_json_of_its_own_the_project_gets_the_environments_and_its_lock():
    out = await node_package(BOX, TEMPLATE, {"src/App.jsx": "x"})
    assert json.loads(out["package.json"]) == ENV_PACKAGE
    assert out["package.json"].startswith('{\n  "name"') and out["package.json"].endswith("}\n")
    assert out["package-lock.json"] == LOCK


async def test_the_projects_fields_stay_and_the_environment_wins_where_both_speak():
    own = {
        "name": "counter",
        "description": "a counter",
        "type": "commonjs",
        "scripts": {"test": "react-scripts test", "start": "vite"},
        "dependencies": {"react": "^16.0.0", "classnames": "^2.5.1", "jest": "^29.0.0"},
        "devDependencies": {"eslint": "^9.0.0"},
    }
    out = json.loads((await node_package(BOX, TEMPLATE, {"package.json": json.dumps(own)}))["package.json"])
    assert out["name"] == "devlooper-project"  # the lock's name: npm ci compares them
    assert (out["description"], out["type"]) == ("a counter", "commonjs")
    assert out["scripts"] == {"test": "jest", "start": "vite"}
    # react at the installed version; jest only where npm put it (devDependencies); the rest kept
    assert out["dependencies"] == {"react": "^19.3.1", "lodash.clamp": "^4.0.3", "classnames": "^2.5.1"}
    assert out["devDependencies"] == {"jest": "^30.5.2", "eslint": "^9.0.0"}


async def test_a_broken_package_json_of_the_model_is_replaced():
    for broken in ("{not json", "[1, 2]", '{"dependencies": ["react"]}'):
        out = await node_package(BOX, TEMPLATE, {"package.json": broken})
        assert json.loads(out["package.json"])["dependencies"] == ENV_PACKAGE["dependencies"]


async def test_an_environment_without_package_json_leaves_the_manifest_to_the_model():
    assert await node_package(EnvFiles({}), TEMPLATE, {"package.json": "{}"}) == {}


async def test_only_what_differs_is_an_edit():
    first = await build_manifest(BOX, TEMPLATE, {})
    assert set(first) == {"package.json", "package-lock.json"}
    assert await build_manifest(BOX, TEMPLATE, first) == {}
