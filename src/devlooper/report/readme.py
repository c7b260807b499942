"""The README a generated project gets: what it is, how to install and test it,
and that devlooper wrote it from which prompt. Written by ``finish`` from the
run's state, not by a model; a project whose model already wrote a README keeps it."""

from __future__ import annotations

from ..templates import EnvTemplate
from .jinja import environment

README = "README.md"

# How a person installs and tests a project of each runtime (the template's own
# commands are the harness's: result files, CI flags, a shared environment).
_INSTALL = {
    "python": "```sh\npython -m venv .venv && . .venv/bin/activate\npip install -r {manifest}\n```",
    "node": "```sh\nnpm install\n```",
    "rust": "```sh\ncargo build\n```",
}
_TEST = {"python": "python -m pytest", "node": "npx jest", "rust": "cargo test"}


def has_readme(files: dict[str, str]) -> bool:
    return any(path.lower().startswith("readme") for path in files)


def project_readme(prompt: str, template: EnvTemplate, notes: str, status: str, reason: str) -> str:
    first = prompt.strip().splitlines()[0] if prompt.strip() else "A generated project"
    title = first if len(first) <= 80 else first[:79] + "…"
    title = title[:1].upper() + title[1:]
    install = _INSTALL.get(template.runtime, "Install the packages listed in `{manifest}`.").format(manifest=template.manifest)
    return environment().get_template("README.md.j2").render(
        title=title, prompt=prompt.strip()[:1].upper() + prompt.strip()[1:], notes=notes.strip(), install=install,
        test=_TEST.get(template.runtime, template.test_command), template=template.name,
        passed=status == "passed", reason=reason,
    )
