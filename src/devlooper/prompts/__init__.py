"""Prompt building: everything the model sees is built here, one template file per step.

Everything that reaches the model is bounded: parsed failures first, test
output with its head and tail, the code most relevant to the failure (whole
files when they fit, else chunks chosen by BM25, with embedding similarity
when an embedding model is configured: ``retrieval``), a file to fix
shown whole only when it fits (else its relevant chunks, answered with a
search/replace patch), and a compact history, newest first (``history``).
Every prompt as a whole is held to a token budget (``within_budget``,
``Context.max_prompt_tokens``): over it, its largest parts are clipped until it
fits. Nothing grows with the number of iterations or the size of one file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from importlib import resources

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from ..bounded import clip
from ..budgets import CHARS_PER_TOKEN, CODE_SHARE, FIX_FILE_SHARE, MAX_PROMPT_TOKENS
from .history import render_history
from .retrieval import Ranker, chunks, failure_query, pick, rank, relevant_code
from .tokens import count_tokens
from ..schemas import Action, ProjectPlan
from ..state import State, TestRun
from ..templates.base import EnvTemplate

FIX_OUTPUT_BUDGET = 6_000  # characters of test output shown with one file fix


@cache
def _text(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.md").read_text()


MARKER = 64  # room for the note ``clip`` leaves where it dropped characters


def size_of(messages: list[BaseMessage]) -> int:
    """A prompt's size in tokens (``tokens.count_tokens``)."""
    return sum(count_tokens(m.content) for m in messages)


def within_budget(
    build: Callable[[dict[str, object]], list[BaseMessage]], values: dict[str, object], budget: int = MAX_PROMPT_TOKENS
) -> list[BaseMessage]:
    """``build(values)``, with the largest text values clipped (head and tail kept)
    until all the messages together hold at most ``budget`` tokens."""
    messages = build(values)
    for _ in range(2 * len(values) + 2):
        used = size_of(messages)
        texts = [k for k, v in values.items() if isinstance(v, str)]
        if used <= budget or not texts:
            break
        chars = sum(len(m.content) for m in messages)
        over = int((used - budget) * chars / used) + 1  # the excess in characters, at this prompt's ratio
        name = max(texts, key=lambda k: len(values[k]))
        size = len(values[name])
        if size <= MARKER:
            break  # only the template's own text is left: nothing worth clipping
        values = {**values, name: clip(values[name], max(2, size - over - MARKER))[0]}
        messages = build(values)
    return messages


def code_budget(budget: int, share: float) -> int:
    """Characters of code a prompt of ``budget`` tokens may give a part of it."""
    return int(budget * share * CHARS_PER_TOKEN)


def _messages(template: EnvTemplate, name: str, budget: int = MAX_PROMPT_TOKENS, **values: object) -> list[BaseMessage]:
    system = {
        "template_name": template.name,
        "template_description": template.description,
        "test_command": template.test_command,
        "guidance": template.guidance or "none",
    }

    def build(v: dict[str, object]) -> list[BaseMessage]:
        return [
            SystemMessage(_text("system").format(**{k: v[k] for k in system})),
            HumanMessage(_text(name).format(**{k: v[k] for k in values})),
        ]

    return within_budget(build, {**system, **values}, budget)


def tree(files: dict[str, str]) -> str:
    return "\n".join(f"- {p} ({len(c.splitlines())} lines)" for p, c in sorted(files.items())) or "(no files)"


def relevant_files(files: dict[str, str], output: str) -> list[str]:
    """Paths ordered by relevance to a failure: named in the output (last mention
    first, as tracebacks end at the fault), then tests, then the rest."""
    mentioned = sorted((p for p in files if _mentions(output, p)), key=lambda p: -output.rfind(p))
    rest = sorted(p for p in files if p not in mentioned)
    tests = [p for p in rest if "test" in p.rsplit("/", 1)[-1]]
    return mentioned + tests + [p for p in rest if p not in tests]


def _mentions(output: str, path: str) -> bool:
    """Whether ``output`` names ``path`` as a whole path (not the tail of a longer name).

    The occurrences are found with ``str.find`` and only they are checked against the
    pattern: a search with the lookbehind scans a whole test output (tens of KB) per file
    at regex speed, the largest cost of a diagnose step on a verbose run."""
    whole = re.compile(rf"(?<![\w.]){re.escape(path)}\b")
    at = output.find(path)
    while at != -1:
        if whole.match(output, at):  # the lookbehind still sees the text before ``at``
            return True
        at = output.find(path, at + 1)
    return False


FAILURES_BUDGET = 6_000  # characters of per-failure excerpts shown to diagnose and plan


def _failures(run: TestRun) -> str:
    """One excerpt per failing test, as the results parser read them, within a budget."""
    failures = run.get("failures") or []
    if not failures:
        return ""
    lines, used = [], 0
    for failure in failures:
        message = failure["message"].replace("\n", "\n    ")
        line = f"- {failure['name']}: {message}"
        if used + len(line) > FAILURES_BUDGET and lines:
            lines.append(f"- ... and {len(failures) - len(lines)} more failing tests")
            break
        lines.append(line)
        used += len(line)
    return f"Failing tests ({run['failed']} failed, {run['passed']} passed):\n" + "\n".join(lines) + "\n"


def docs_read(state: State, iteration: int) -> str:
    """The documentation the plan of ``iteration`` read, for the next prompts."""
    read = [r for r in state.get("action_results", []) if r["iteration"] == iteration and r["kind"] == "read_docs"]
    if not read:
        return ""
    parts = [f"--- docs of {r['target']}{'' if r['ok'] else ' (failed)'}\n{r['output']}" for r in read]
    return "Documentation you asked for (as installed):\n" + "\n\n".join(parts) + "\n"


def plan_project(prompt: str, template: EnvTemplate) -> list[BaseMessage]:
    setup = ", ".join(sorted(template.setup_files)) or "none"
    return _messages(template, "plan_project", prompt=prompt, setup_files=setup)


def generate_file(prompt: str, template: EnvTemplate, plan: ProjectPlan, path: str, purpose: str) -> list[BaseMessage]:
    file_list = "\n".join(f"- {f.path}: {f.purpose}" for f in plan.files)
    return _messages(
        template, "generate_file", prompt=prompt, notes=plan.notes, file_list=file_list, path=path, purpose=purpose
    )


def diagnose(
    state: State,
    template: EnvTemplate,
    output_limit: int,
    notes: str = "",
    budget: int = MAX_PROMPT_TOKENS,
    ranker: Ranker = rank,
) -> list[BaseMessage]:
    """``notes``: what loop memory adds (a regression, a loop warning, a human's guidance);
    ``ranker``: how the code shown is chosen when not all of it fits (``retrieval``)."""
    run = state["test_runs"][-1]
    files = state.get("files", {})
    output, dropped = clip(run["output"], output_limit)
    dropped += run.get("dropped", 0)
    counts = f", {run['passed']} passed, {run['failed']} failed" if run["passed"] or run["failed"] else ""
    code = relevant_code(
        files, failure_query(run), relevant_files(files, run["output"]), code_budget(budget, CODE_SHARE), ranker
    )
    return _messages(
        template,
        "diagnose",
        budget,
        prompt=state["prompt"],
        iteration=run["iteration"],
        exit_code=run["exit_code"],
        counts=counts,
        tree=tree(files),
        relevant_files=code,
        output=output,
        dropped_note=f"{dropped} characters dropped from the middle" if dropped else "complete",
        failures=_failures(run),
        docs=docs_read(state, run["iteration"] - 1),
        history=render_history(state),
        notes=notes,
    )


def plan_fix(
    state: State, template: EnvTemplate, action_notes: str, notes: str = "", budget: int = MAX_PROMPT_TOKENS
) -> list[BaseMessage]:
    return _messages(
        template,
        "plan_fix",
        budget,
        prompt=state["prompt"],
        tree=tree(state.get("files", {})),
        diagnosis=state["diagnosis"],
        failures=_failures(state["test_runs"][-1]) if state.get("test_runs") else "",
        action_notes=action_notes or "(none)",
        docs=docs_read(state, state.get("iteration", 0) - 1),
        install_hint=template.install_command.format(packages="..."),
        history=render_history(state),
        notes=notes,
    )


def fix_as_patch(files: dict[str, str], path: str, budget: int = MAX_PROMPT_TOKENS) -> bool:
    """Whether the file to fix is too large to be shown whole: then the model sees
    its relevant chunks and answers with a search/replace patch (``patches``)."""
    return len(files.get(path) or "") > code_budget(budget, FIX_FILE_SHARE)


def fix_file(
    state: State, template: EnvTemplate, action: Action, budget: int = MAX_PROMPT_TOKENS, ranker: Ranker = rank
) -> list[BaseMessage]:
    files = state.get("files", {})
    path = action.path
    run = state["test_runs"][-1]
    if fix_as_patch(files, path, budget):
        query = f"{action.instructions}\n{state['diagnosis']}\n{failure_query(run)}"
        shown = pick(ranker(chunks(path, files[path]), query), code_budget(budget, FIX_FILE_SHARE))
        lines = files[path].count("\n") + 1
        current = (
            f"`{path}` has {lines} lines, too many to show whole; its parts most relevant to the failure:\n"
            + "\n\n".join(c.render() for c in shown)
        )
        reply = (
            "Reply with the changes as search/replace blocks only, no explanations:\n"
            "<<<<<<< SEARCH\n(lines copied exactly from the file, without the --- headers)\n=======\n"
            "(the lines that replace them)\n>>>>>>> REPLACE\n"
            "Each SEARCH part must occur exactly once in the file: include enough lines to make it unique."
        )
    else:
        current = (
            f"Current content of `{path}`:\n```\n{files[path]}\n```\n" if path in files else f"`{path}` does not exist yet.\n"
        )
        reply = f"Reply with the complete new content of `{path}` only: no explanations, no Markdown fences."
    output, _ = clip(run["output"], FIX_OUTPUT_BUDGET)
    return _messages(
        template,
        "fix_file",
        budget,
        prompt=state["prompt"],
        tree=tree(files),
        diagnosis=state["diagnosis"],
        path=path,
        instructions=action.instructions or "(see the diagnosis)",
        output=output,
        current=current,
        reply=reply,
    )


def strip_fences(text: str) -> str:
    """Models often wrap a file in a Markdown fence despite being told not to."""
    stripped = text.strip("\n")
    match = re.fullmatch(r"```[\w.+-]*\n(.*?)\n?```", stripped, flags=re.S)
    body = match.group(1) if match else text
    return body if body.endswith("\n") else body + "\n"


TEMPLATE_SYSTEM = (
    "You are devlooper's environment engineer: you write environment templates in which "
    "generated projects are built and tested, and you know the toolchains' exact commands."
)


def _draft_messages(v: dict[str, object]) -> list[BaseMessage]:
    return [SystemMessage(TEMPLATE_SYSTEM), HumanMessage(_text("template_draft").format(description=v["description"]))]


def template_draft(description: str) -> list[BaseMessage]:
    return within_budget(_draft_messages, {"description": description})


def template_repair(description: str, draft: str, problem: str, attempt: int, attempts: int) -> list[BaseMessage]:
    """The first prompt again, then the failed draft and what went wrong (bounded)."""
    problem, _ = clip(problem, 6_000)

    def build(v: dict[str, object]) -> list[BaseMessage]:
        return [*_draft_messages(v), HumanMessage(_text("template_repair").format(**v))]

    values = {"description": description, "draft": draft, "problem": problem, "attempt": attempt, "attempts": attempts}
    return within_budget(build, values)
