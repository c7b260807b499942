"""read_docs: a package's documentation, as installed in the sandbox.

The plan may ask to read a package's documentation (``read_docs``: a package and
an optional symbol). The template's ``docs_command`` says how to get it from what
is installed (python: pydoc's signatures and docstrings; node: the package's
type definitions and README; rust: the crate's source and doc comments). The
answer, bounded to ``DOCS_CHARS``, is recorded as the action's result and shown
to the next model call.
"""

from __future__ import annotations

import shlex

from .bounded import clip
from .budgets import DOCS_CHARS
from .plancheck import refusal
from .sandboxes.base import Sandbox
from .schemas import Action
from .state import ActionResult
from .templates import EnvTemplate

DOCS_TIMEOUT = 120.0  # seconds a docs command may take


def docs_command(template: EnvTemplate, action: Action) -> str | None:
    if not template.docs_command:
        return None
    # Not str.format: the command is shell (and JavaScript) full of braces of its own.
    return template.docs_command.replace("{package}", shlex.quote(action.package or "")).replace(
        "{symbol}", shlex.quote(action.symbol or "")
    )


async def read_docs(box: Sandbox, template: EnvTemplate, action: Action, iteration: int) -> ActionResult:
    command = docs_command(template, action)
    if command is None:
        return refusal(iteration, "read_docs", action.target(), f"the {template.name} template has no docs_command")
    result = await box.exec(command, timeout=DOCS_TIMEOUT)
    return ActionResult(
        iteration=iteration,
        kind="read_docs",
        target=action.target(),
        ok=result.ok,
        exit_code=result.exit_code,
        output=clip(result.output, DOCS_CHARS)[0],
        duration=round(result.duration, 3),
    )
