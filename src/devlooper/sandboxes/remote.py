"""What the remote backends (E2B, Modal) share: environment, paths, build steps.

A remote sandbox gets its toolchain from the template's image; the steps of
the template (setup commands, base packages) and the layers are either baked
into a prebuilt image or replayed on a fresh sandbox. ``$DEVLOOPER_ENV`` is a
fixed directory there (``ENV_DIR``), made by the first step together with the
template's ``env_links`` into the workdir, so a template's commands work on
every backend alike.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Sequence

from ..layers import Layer
from ..paths import normalize
from ..templates.base import EnvTemplate
from .base import ExecResult, ProjectEntry, SandboxError
from .workspace import FILE_CAP, ignored

ENV_DIR = "/opt/devlooper/env"  # $DEVLOOPER_ENV in a remote sandbox: what installs add

# Pagers, prompts and progress bars off (nobody is at the terminal), and where the environment is.
REMOTE_ENV = {
    "DEVLOOPER_ENV": ENV_DIR,
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "MANPAGER": "cat",
    "TERM": "dumb",
    "NO_COLOR": "1",
    "CI": "1",
    "DEBIAN_FRONTEND": "noninteractive",
    "PYTHONUNBUFFERED": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "PIP_PROGRESS_BAR": "off",
    "npm_config_progress": "false",
    "npm_config_fund": "false",
    "npm_config_audit": "false",
    "npm_config_update_notifier": "false",
    "CARGO_TERM_PROGRESS_WHEN": "never",
}


def remote_path(template: EnvTemplate, path: str) -> str:
    """A project path (validated) under the template's workdir."""
    return posixpath.join(template.workdir, normalize(path))


def remote_cwd(template: EnvTemplate, cwd: str | None) -> str:
    return remote_path(template, cwd) if cwd else template.workdir


def shell(command: str | Sequence[str]) -> str:
    """One shell command line, stdin closed so that ``input()`` fails at once."""
    line = command if isinstance(command, str) else shlex.join(command)
    return f"( {line} ) < /dev/null"


def prepare_step(template: EnvTemplate) -> str:
    """Make the environment directory and the workdir, and link ``env_links`` into the workdir.

    A link may point at what is not installed yet (node_modules before npm runs)."""
    lines = [f"mkdir -p {ENV_DIR} {shlex.quote(template.workdir)}"]
    for name in template.env_links:
        link = remote_path(template, name)
        lines.append(f"mkdir -p {shlex.quote(posixpath.dirname(link))}")
        lines.append(f"ln -sfn {shlex.quote(posixpath.join(ENV_DIR, normalize(name)))} {shlex.quote(link)}")
    return " && ".join(lines)


def base_steps(template: EnvTemplate) -> list[str]:
    """The template's own environment steps, before any layer."""
    steps = [prepare_step(template), *template.setup_commands]
    if template.base_packages:
        steps.append(template.install_command.format(packages=" ".join(shlex.quote(p) for p in template.base_packages)))
    return steps


def layer_command(template: EnvTemplate, layer: Layer) -> str:
    if layer["kind"] == "install":
        return template.install_command.format(packages=layer["spec"])
    return layer["spec"]


LISTING_END = "\0--devlooper-hashes--\0"


def listing_command(template: EnvTemplate) -> str:
    """One command, run in the workdir, that lists the project part of the workspace.

    Each entry is printed as ``KIND SIZE PATH`` and NUL-terminated (``f`` file, ``l``
    link, ``o`` anything else); then the sha256 of every regular file no larger than
    ``FILE_CAP`` (``sha256sum -z`` prints names unescaped). ``find`` never follows a
    link, and ignored names are pruned so a build tree is never walked or hashed."""
    prunes = []
    for pattern in template.not_project():
        pattern = pattern.rstrip("/")
        test = "-path" if "/" in pattern else "-name"
        prunes.append(f"{test} {shlex.quote('./' + pattern if test == '-path' else pattern)}")
    prune = f"\\( {' -o '.join(prunes)} \\) -prune -o " if prunes else ""
    kinds = (
        "\\( -type f -printf 'f %s %P\\0' \\) -o \\( -type l -printf 'l 0 %P\\0' \\) "
        "-o \\( ! -type d -printf 'o 0 %P\\0' \\)"
    )
    return (
        f"find . -mindepth 1 {prune}{kinds} && printf '\\0--devlooper-hashes--\\0' && "
        f"find . -mindepth 1 {prune}-type f -size -{FILE_CAP + 1}c -exec sha256sum -z -- {{}} +"
    )


def parse_listing(template: EnvTemplate, result: ExecResult) -> list[ProjectEntry]:
    """The entries ``listing_command`` printed, with the digests of the regular files."""
    if not result.ok or result.truncated or LISTING_END not in result.stdout:
        raise SandboxError(f"listing the project files failed:\n{result.output[-2000:]}")
    listing, hashes = result.stdout.split(LISTING_END, 1)
    digests = {}
    for line in filter(None, hashes.split("\0")):
        digest, _, path = line.partition("  ")
        digests[path.removeprefix("./")] = digest
    patterns = template.not_project()
    found = []
    for line in filter(None, listing.split("\0")):
        kind, size, path = line.split(" ", 2)
        if ignored(path, patterns):  # a path pattern find's -name cannot express
            continue
        kinds = {"f": "file", "l": "link", "o": "other"}
        found.append(ProjectEntry(path, kinds[kind], int(size), digests.get(path) if kind == "f" else None))
    return sorted(found, key=lambda e: e.path)


def remove_command(template: EnvTemplate, path: str) -> list[str]:
    """Remove one entry of the workspace (a link itself, never its target)."""
    return ["rm", "-f", "--", posixpath.join(template.workdir, path)]
