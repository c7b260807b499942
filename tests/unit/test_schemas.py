import pytest
from pydantic import ValidationError

from devlooper.paths import UnsafePathError, normalize, resolve_inside
from devlooper.schemas import DebugPlan, ProjectPlan


def plan(**action) -> DebugPlan:
    return DebugPlan(summary="s", actions=[action])


@pytest.mark.parametrize(
    "path",
    ["../evil.py", "/etc/passwd", "a/../../b.py", "..", ".", "", "C:\\x.py", ".devlooper/report.json", ".git/config"],
)
def test_paths_that_leave_the_workspace_are_rejected(path):
    with pytest.raises(ValidationError):
        plan(kind="fix_file", path=path, instructions="x")


def test_paths_are_normalized():
    assert plan(kind="fix_file", path="./pkg//mod.py").actions[0].path == "pkg/mod.py"
    assert plan(kind="delete_file", path="a/b/../c.py").actions[0].path == "a/c.py"


@pytest.mark.parametrize(
    "action",
    [
        {"kind": "fix_file"},
        {"kind": "delete_file"},
        {"kind": "install", "packages": []},
        {"kind": "command"},
        {"kind": "rewrite_everything", "path": "a.py"},
    ],
)
def test_incomplete_or_unknown_actions_are_rejected(action):
    with pytest.raises(ValidationError):
        plan(**action)


@pytest.mark.parametrize("spec", ["numpy; rm -rf /", "$(curl x)", "a|b", "`id`", "x && y", "--x;id", "-", "--"])
def test_package_specs_with_shell_syntax_are_rejected(spec):
    with pytest.raises(ValidationError):
        plan(kind="install", packages=[spec])


@pytest.mark.parametrize(
    "specs",
    [["numpy"], ["numpy>=1.26"], ["requests[socks]==2.31"], ["pydantic[email]>=2,<3"], ["@types/node"],
     ["react@^18.2.0"], ["serde@1"], ["serde", "--features", "derive,std"], ["-F", "derive"], ["tokio", "--dev"]],
)
def test_ordinary_package_specs_pass(specs):
    assert plan(kind="install", packages=specs).actions[0].packages == specs


@pytest.mark.parametrize(
    "specs",
    [[".", ], ["./pkg"], ["/tmp/x.whl"], ["--path", "/x/helper"], ["--index-url", "https://example.invalid/simple"],
     ["-i", "x"], ["git+https://example.invalid/x.git"], ["https://example.invalid/x.whl"], ["user/repo"],
     ["file:../x"], ["x@file:y"], ["a@../x"], ["--registry", "x"], ["-e", "."], ["x", "--git", "y"],
     ["--features", "dep/feat"], ["--features"]],
)
def test_paths_urls_and_index_options_are_refused_with_what_to_do(specs):
    with pytest.raises(ValidationError, match="local_packages"):
        plan(kind="install", packages=specs)


def test_a_plan_needs_an_action():
    with pytest.raises(ValidationError):
        DebugPlan(summary="nothing", actions=[])


def test_project_plan_drops_duplicate_files():
    p = ProjectPlan(notes="n", files=[{"path": "a.py", "purpose": "1"}, {"path": "./a.py", "purpose": "2"}])
    assert [(f.path, f.purpose) for f in p.files] == [("a.py", "1")]


def test_resolve_inside_refuses_symlink_escape(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError):
        resolve_inside(root, "link/outside.txt")
    assert resolve_inside(root, "pkg/a.py") == (root / "pkg" / "a.py").resolve()
    assert normalize("pkg\\a.py") == "pkg/a.py"
