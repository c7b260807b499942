"""Who decides: the command policy, and how a person's answers at a pause are read.

A `command` action runs an arbitrary shell command in the sandbox. The policy
(``Context.commands``) says what happens to one: ``allow`` runs it, ``deny``
refuses it, ``ask`` pauses the run for a person (``interrupt``). Commands that
start with a prefix in ``Context.allow_commands`` always run. A refusal is never
an error: it reaches the model as an ``ActionResult`` with ``ok=False``.

Answers come from a terminal (the CLI) or from ``Command(resume=...)`` (a server
client, Studio, the Python API), so each is read leniently: a word, a string of
guidance, or a dict with ``action`` and ``guidance``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .context import Context
from .errors import ConfigError
from .schemas import Action, ProjectPlan
from .state import ActionResult, Decision, State

YES = frozenset({"", "y", "yes", "ok", "approve", "approved", "allow", "run", "go"})
NO = frozenset({"n", "no", "refuse", "refused", "deny", "reject", "skip"})


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # unbalanced quotes: compare the raw words
        return command.split()


def allow_listed(command: str, prefixes: list[str]) -> bool:
    """``command`` starts with one of ``prefixes``, word by word: ``npm run`` allows
    ``npm run lint`` but not ``npm runx``; a command with shell operators (``;``, ``&&``,
    ``|``, ``$(``, backquotes, redirections) is never allow-listed, since the words after
    the prefix could run anything."""
    if any(op in command for op in (";", "&", "|", "`", "$(", ">", "<", "\n")):
        return False
    words = _words(command)
    return any((p := _words(prefix)) and words[: len(p)] == p for prefix in prefixes)


def check_policy(ctx: Context) -> None:
    """A clear error for a policy that is not one."""
    if ctx.commands not in (None, "allow", "deny", "ask"):
        raise ConfigError(f"--commands must be allow, deny or ask, not {ctx.commands!r}")


def policy_for(ctx: Context, command: str) -> str:
    """``allow``, ``deny`` or ``ask`` for one command."""
    if allow_listed(command, ctx.allow_commands):
        return "allow"
    return ctx.command_policy()


def commands_to_ask(state: State, ctx: Context) -> list[str]:
    """Commands of the newest plan a person must approve before apply runs them."""
    plans = state.get("plans") or []
    if not plans:
        return []
    commands = [a.get("command") or "" for a in plans[-1]["actions"] if a.get("kind") == "command"]
    return [c for c in commands if policy_for(ctx, c) == "ask"]


def command_refusals(state: State, ctx: Context, iteration: int) -> dict[str, ActionResult]:
    """The hook apply consults before it runs a command: the refused ones, as results
    the next diagnosis and plan see (command -> ActionResult with ``ok=False``)."""
    from .plancheck import refusal  # plancheck imports the nodes, which import this module
    plans = state.get("plans") or []
    if not plans:
        return {}
    said = {d["subject"]: d for d in state.get("decisions", []) if d["moment"] == "command" and d["iteration"] == iteration}
    refused: dict[str, ActionResult] = {}
    for action in (Action.model_validate(a) for a in plans[-1]["actions"]):
        if action.kind != "command" or not action.command:
            continue
        policy = policy_for(ctx, action.command)
        why = None
        if policy == "deny":
            why = "the command policy (--commands deny) runs no commands: change files with fix_file, or install packages"
        elif policy == "ask":
            decision = said.get(action.command)
            if decision is None:
                why = "the command policy asks a person, and no one approved it"
            elif decision["verdict"] != "approved":
                why = f"a person refused it{': ' + decision['guidance'] if decision.get('guidance') else ''}"
        if why:
            refused[action.command] = refusal(iteration, "command", action.command, why)
    return refused


# --- a person's answers ---------------------------------------------------------------
@dataclass
class Answer:
    verdict: str  # approved, edited, rejected, refused
    guidance: str | None = None
    plan: dict | None = None  # an edited generation plan, validated
    problem: str | None = None  # why an edited plan was not accepted (ask again)


def _split(answer: Any) -> tuple[str, str, Any]:
    """(action word, guidance, plan) from a string or a dict answer."""
    if answer is True or answer is None:
        return "approve", "", None
    if answer is False:
        return "reject", "", None
    if isinstance(answer, dict):
        action = str(answer.get("action") or answer.get("verdict") or "").strip().lower()
        return action, str(answer.get("guidance") or "").strip(), answer.get("plan")
    return "", str(answer).strip(), None


def read_plan_answer(answer: Any) -> Answer:
    """A plan is approved by an empty answer or a yes; a dict ``{"action": "edit", "plan":
    {...}}`` replaces it; any other text rejects it, the text being the guidance for the
    next plan (``{"action": "approve", "guidance": ...}`` approves with guidance)."""
    action, guidance, plan = _split(answer)
    if not action:
        action = "approve" if guidance.lower() in YES else "reject"
        if action == "approve":
            guidance = ""
    if action in ("edit", "edited"):
        try:
            checked = ProjectPlan.model_validate(plan)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "plan"
            return Answer("edited", guidance or None, problem=f"the edited plan is not valid: {where}: {first['msg']}")
        return Answer("edited", guidance or None, plan=checked.model_dump(mode="json"))
    if action in YES:
        return Answer("approved", guidance or None)
    return Answer("rejected", guidance or None)


def read_command_answer(answer: Any) -> Answer:
    """A command runs on an empty answer or a yes; a no refuses it; other text refuses it
    with that text as guidance for the model."""
    action, guidance, _ = _split(answer)
    if not action:
        if guidance.lower() in YES:
            return Answer("approved")
        if guidance.lower() in NO:
            return Answer("refused")
        return Answer("refused", guidance)
    return Answer("approved" if action in YES else "refused", guidance or None)


def decision(state: State, moment: str, subject: str, answer: Answer, by: str = "person") -> Decision:
    return Decision(
        iteration=state.get("iteration", 0), moment=moment, subject=subject[:2_000],
        verdict=answer.verdict, by=by, guidance=answer.guidance,
    )
