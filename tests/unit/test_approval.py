"""The command policy and how a person's answers at a pause are read."""

from __future__ import annotations

import pytest

from devlooper.approval import (
    allow_listed,
    check_policy,
    command_refusals,
    commands_to_ask,
    read_command_answer,
    read_plan_answer,
)
from devlooper.context import Context, settings_of, with_settings
from devlooper.errors import ConfigError


def state_with(*commands: str, decisions=()) -> dict:
    actions = [{"kind": "command", "command": c} for c in commands]
    actions.append({"kind": "fix_file", "path": "a.py", "instructions": "x"})
    return {"iteration": 2, "plans": [{"iteration": 2, "summary": "s", "actions": actions}], "decisions": list(decisions)}


@pytest.mark.parametrize(
    "command, allowed",
    [
        ("npm run lint", True),
        ("npm run lint -- --fix", True),
        ("npm runx", False),
        ("npm", False),
        ("npm run lint; rm -rf /", False),
        ("npm run lint && curl x", False),
        ("npm run lint | sh", False),
        ("npm run $(curl x)", False),
        ("npm run lint > /etc/x", False),
        ("black .", True),
    ],
)
def test_allow_list_matches_whole_words_and_never_a_command_with_shell_operators(command, allowed):
    assert allow_listed(command, ["npm run lint", "black"]) is allowed


def test_the_policy_defaults_to_ask_when_interactive_else_allow():
    assert Context().command_policy() == "allow"
    assert Context(interactive=True).command_policy() == "ask"
    assert Context(interactive=True, commands="deny").command_policy() == "deny"
    with pytest.raises(ConfigError, match="allow, deny or ask"):
        check_policy(Context(commands="sometimes"))


def test_deny_refuses_every_command_but_the_allow_listed_ones_as_data():
    ctx = Context(commands="deny", allow_commands=["black"])
    refused = command_refusals(state_with("black .", "rm -rf build"), ctx, 2)
    assert list(refused) == ["rm -rf build"]
    result = refused["rm -rf build"]
    assert result["ok"] is False and result["kind"] == "command" and result["iteration"] == 2
    assert "--commands deny" in result["output"]


def test_ask_refuses_what_no_person_approved_and_what_a_person_refused():
    ctx = Context(interactive=True)
    state = state_with("make gen", "make clean", "make all")
    assert commands_to_ask(state, ctx) == ["make gen", "make clean", "make all"]
    decisions = [
        {"iteration": 2, "moment": "command", "subject": "make gen", "verdict": "approved", "by": "person", "guidance": None},
        {"iteration": 2, "moment": "command", "subject": "make clean", "verdict": "refused", "by": "person",
         "guidance": "do not clean, it removes the fixtures"},
    ]
    refused = command_refusals(state_with("make gen", "make clean", "make all", decisions=decisions), ctx, 2)
    assert set(refused) == {"make clean", "make all"}
    assert "a person refused it: do not clean, it removes the fixtures" in refused["make clean"]["output"]
    assert "no one approved it" in refused["make all"]["output"]
    # A decision of another iteration does not carry over.
    assert set(command_refusals(state_with("make gen", decisions=decisions) | {"iteration": 3}, ctx, 3)) == {"make gen"}


@pytest.mark.parametrize("answer", ["", "y", "yes", "approve", True, None, {"action": "approve"}])
def test_a_plan_is_approved_by_an_empty_answer_or_a_yes(answer):
    read = read_plan_answer(answer)
    assert read.verdict == "approved" and read.guidance is None


def test_other_text_rejects_a_plan_with_that_guidance_and_a_dict_may_approve_with_guidance():
    assert (read_plan_answer("use a dataclass").verdict, read_plan_answer("use a dataclass").guidance) == (
        "rejected", "use a dataclass")
    read = read_plan_answer({"action": "approve", "guidance": "keep it small"})
    assert (read.verdict, read.guidance) == ("approved", "keep it small")


def test_an_edited_plan_is_validated_and_an_invalid_one_says_why():
    plan = {"notes": "n", "files": [{"path": "a.py", "purpose": "p"}], "packages": []}
    read = read_plan_answer({"action": "edit", "plan": plan})
    assert read.verdict == "edited" and read.plan["files"][0]["path"] == "a.py" and read.problem is None
    bad = read_plan_answer({"action": "edit", "plan": {"notes": "n", "files": []}})
    assert bad.problem and "files" in bad.problem and bad.plan is None


@pytest.mark.parametrize(
    "answer, verdict, guidance",
    [
        ("", "approved", None), ("yes", "approved", None), ("n", "refused", None), ("no", "refused", None),
        ("it deletes the fixtures", "refused", "it deletes the fixtures"),
        ({"action": "approve", "guidance": "then run the tests"}, "approved", "then run the tests"),
        ({"action": "refuse"}, "refused", None),
    ],
)
def test_command_answers(answer, verdict, guidance):
    read = read_command_answer(answer)
    assert (read.verdict, read.guidance) == (verdict, guidance)


def test_a_runs_settings_fill_what_the_caller_did_not_give_and_an_explicit_value_wins(monkeypatch):
    started = Context(model="replay:x.json", interactive=True, max_iterations=4, output_dir="/tmp/o", commands="deny")
    settings = settings_of(started)
    # A server client resuming with no context at all, with a DEVLOOPER_* variable set.
    monkeypatch.setenv("DEVLOOPER_MAX_ITERATIONS", "99")
    resumed = with_settings(Context(), settings)
    assert (resumed.model, resumed.interactive, resumed.max_iterations, resumed.output_dir, resumed.commands) == (
        "replay:x.json", True, 4, "/tmp/o", "deny")
    overridden = with_settings(Context(max_iterations=7), settings)
    assert overridden.max_iterations == 7 and overridden.interactive is True
    assert with_settings(Context(), None).max_iterations == 99
