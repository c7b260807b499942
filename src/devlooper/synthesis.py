"""Environment templates synthesized from a description (`devlooper template new`).

The model writes a template together with two tiny projects; the template is
accepted only when its environment builds in the sandbox, its test command
passes on the example project and fails on the failing one (a command that
always exits 0 would call every project green). Otherwise the problem goes
back to the model, in a bounded number of repairs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit
from langchain_core.language_models import BaseChatModel
from pydantic import ValidationError

from . import prompts
from .bounded import clip
from .errors import ConfigError
from .models import Recorder, ask_structured
from .results import parse_results
from .sandboxes import SandboxStartupError, make_sandbox
from .schemas import TemplateDraft
from .templates import EnvTemplate

CHECK_TIMEOUT = 300.0  # seconds for each test command of a check


@dataclass
class Attempt:
    number: int
    draft: TemplateDraft
    problem: str | None  # None: the template works


@dataclass
class Synthesis:
    template: EnvTemplate | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.template is not None


async def check_draft(draft: TemplateDraft, backend: str) -> tuple[EnvTemplate | None, str | None]:
    """Build the draft's environment and run its tests on both projects: (template, None) when it works."""
    try:
        template = EnvTemplate.model_validate(draft.template_data())
    except ValidationError as exc:
        return None, "the template is not valid: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
    failing = {f.path: f.content for f in draft.failing_files}
    box = make_sandbox(backend, template, run_id=f"template-{uuid.uuid4().hex[:8]}")
    try:
        await box.start()
    except SandboxStartupError as exc:
        return None, f"its environment did not build: {exc}"
    try:
        await box.sync_files({**template.setup_files, **template.example_files})
        passed = await box.exec(template.test_command, timeout=CHECK_TIMEOUT)
        if not passed.ok:
            return None, (
                f"the test command exited {passed.exit_code} on example_files, which must pass:\n"
                f"{clip(passed.output, 4_000)[0]}"
            )
        report = None
        if template.results_file:
            try:
                report = await box.read_file(template.results_file)
            except FileNotFoundError:
                return None, f"the test command wrote no results file at {template.results_file}"
        results = parse_results(template, passed.output, report)
        if template.results != "none" and not results.passed:
            return None, f"no passing test could be read from the {template.results} results of example_files"
        await box.sync_files({**template.setup_files, **failing})
        failed = await box.exec(template.test_command, timeout=CHECK_TIMEOUT)
        if failed.ok:
            return None, (
                "the test command exited 0 on failing_files, whose test must fail: it would call every "
                f"project green:\n{clip(failed.output, 2_000)[0]}"
            )
        return template, None
    finally:
        await box.close()


async def synthesize(
    description: str,
    model: BaseChatModel,
    *,
    backend: str = "local",
    attempts: int = 3,
    recorder: Recorder | None = None,
    on_attempt: Callable[[Attempt], None] | None = None,
    structured_output: str = "json_schema",
) -> Synthesis:
    """Draft, check and repair a template, at most ``attempts`` drafts."""
    result = Synthesis(template=None)
    messages = prompts.template_draft(description)
    for number in range(1, attempts + 1):
        key = "template_draft" if number == 1 else f"template_repair:{number}"
        draft, _ = await ask_structured(
            model, messages, TemplateDraft, key=key, recorder=recorder, mode=structured_output
        )
        template, problem = await check_draft(draft, backend)
        attempt = Attempt(number, draft, problem)
        result.attempts.append(attempt)
        if on_attempt:
            on_attempt(attempt)
        if template is not None:
            result.template = template
            return result
        shown = json.dumps(draft.model_dump(mode="json"), indent=1)
        messages = prompts.template_repair(description, shown, problem or "", number + 1, attempts)
    return result


def template_toml(template: EnvTemplate) -> str:
    """The template as a user template file (multi-line strings for files and guidance)."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment("devlooper environment template (see docs/templates.md)"))
    data = template.model_dump(mode="json", exclude_none=True)
    tables = {name: data.pop(name) for name in ("setup_files", "example_files")}
    for key, value in data.items():
        if value in ([], {}, ""):
            continue
        doc[key] = tomlkit.string(value, multiline=True) if isinstance(value, str) and "\n" in value else value
    for name, files in tables.items():
        if files:
            table = tomlkit.table()
            for path, content in files.items():
                table[path] = tomlkit.string(content, multiline=True)
            doc[name] = table
    return tomlkit.dumps(doc)


def save_template(template: EnvTemplate, path: str | Path, *, force: bool = False) -> Path:
    target = Path(path).expanduser()
    if target.exists() and not force:
        raise ConfigError(f"{target} exists; use --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(template_toml(template), encoding="utf-8")
    return target
