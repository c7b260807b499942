"""Structured model outputs: the generation plan and the debug plan.

Actions are one flat model with a ``kind`` rather than a discriminated union:
flat JSON schemas work with every OpenAI-compatible server's structured output,
and the validator below still rejects an action missing what its kind needs.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from .paths import normalize

# A path from the model: relative to the project root and inside it (``paths.normalize``).
ProjectPath = Annotated[str, AfterValidator(normalize)]

# What a model may ask an install for: package names, with extras and a version (pip's
# ``pydantic[email]>=2,<3``, npm's ``@types/node@^20``, cargo's ``serde@1``), and cargo add's
# feature and dependency-kind options. Never a path, a URL, ``.``, or an index, registry or
# source option: those would install code from anywhere under a name that says nothing
# about it (and the environment cache keys by that name). A local package is declared by
# the user in the template (``local_packages``) and named here by its name.
_NAME = r"(?:@[a-z0-9][a-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*"
_EXTRAS = r"(?:\[[A-Za-z0-9._-]+(?:,[A-Za-z0-9._-]+)*\])?"
_VERSION = r"(?:(?:===?|[<>!~]=|[<>@])[A-Za-z0-9.*+^~_-]*(?:,(?:===?|[<>!~]=|[<>])[A-Za-z0-9.*+_-]+)*)?"
PACKAGE_NAME = re.compile(rf"^{_NAME}{_EXTRAS}{_VERSION}$")
FEATURES = re.compile(r"^[A-Za-z0-9_+-]+(?:,[A-Za-z0-9_+-]+)*$")  # after --features / -F
FLAG_OPTIONS = ("--dev", "--build", "--optional", "--no-default-features")
VALUE_OPTIONS = ("--features", "-F")
INSTALL_HELP = (
    "an install takes package names with optional extras and version (requests, pydantic[email]>=2, "
    "@types/node@20, serde@1 --features derive); paths, URLs and index or registry options are not "
    "allowed: a local package must be declared in the template's local_packages and installed by its name"
)


def _packages_list(specs: list[str]) -> list[str]:
    """Validate an install's words in order (an option's value follows it)."""
    words = [s.strip() for s in specs]
    i = 0
    while i < len(words):
        word = words[i]
        option, _, inline = word.partition("=")
        if option in VALUE_OPTIONS:
            value = inline if inline else (words[i + 1] if i + 1 < len(words) else "")
            if not FEATURES.match(value):
                raise ValueError(f"{option} needs a list of feature names, not {value!r}: {INSTALL_HELP}")
            i += 1 if inline else 2
            continue
        if word in FLAG_OPTIONS:
            i += 1
            continue
        if word.startswith("-"):
            raise ValueError(f"option {word!r} is not allowed in an install: {INSTALL_HELP}")
        if not PACKAGE_NAME.match(word) or ".." in word:
            raise ValueError(f"not a package name or version spec: {word!r}: {INSTALL_HELP}")
        i += 1
    return words


class FileSpec(BaseModel):
    path: ProjectPath = Field(description="Path relative to the project root, e.g. voronoi/core.py.")
    purpose: str = Field(description="What the file contains and how it relates to the others.")


class ProjectPlan(BaseModel):
    """The plan of a whole project, written before any file."""

    notes: str = Field(description="Architecture: modules, public API, how the tests exercise it.")
    files: list[FileSpec] = Field(description="Every file to write, tests included.", min_length=1)
    packages: list[str] = Field(default_factory=list, description="Third-party packages the project needs.")

    @field_validator("packages")
    @classmethod
    def _packages(cls, v: list[str]) -> list[str]:
        return _packages_list(v)

    @field_validator("files")
    @classmethod
    def _unique(cls, files: list[FileSpec]) -> list[FileSpec]:
        seen: dict[str, FileSpec] = {}
        for f in files:
            seen.setdefault(f.path, f)
        return list(seen.values())


ActionKind = Literal["fix_file", "delete_file", "install", "command", "read_docs"]
# A symbol of a package: a module path, a function, a type (numpy.linalg.norm, useState, Vec::push).
SYMBOL = re.compile(r"^[A-Za-z_$][\w$]*(?:(?:\.|::)[A-Za-z_$][\w$]*)*$")


class Action(BaseModel):
    kind: ActionKind = Field(
        description="fix_file: rewrite or create a file; delete_file: remove a file; "
        "install: add packages to the environment; command: run a shell command in the environment; "
        "read_docs: read an installed package's documentation (its API, in the installed version)."
    )
    path: ProjectPath | None = Field(default=None, description="For fix_file and delete_file: the file's path.")
    instructions: str = Field(default="", description="For fix_file: exactly what to change and why.")
    packages: list[str] = Field(default_factory=list, description="For install: package names or specs.")
    command: str | None = Field(default=None, description="For command: the shell command to run.")
    package: str | None = Field(default=None, description="For read_docs: the installed package to read about.")
    symbol: str | None = Field(
        default=None, description="For read_docs, optional: a module, function or type of the package."
    )

    @field_validator("package")
    @classmethod
    def _one_package(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not PACKAGE_NAME.match(v.strip()) or ".." in v:
            raise ValueError(f"not a package name: {v!r}: {INSTALL_HELP}")
        return v.strip()

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str | None) -> str | None:
        if v and not SYMBOL.match(v.strip()):
            raise ValueError(f"not a symbol name: {v!r}")
        return v.strip() if v else None

    @field_validator("packages")
    @classmethod
    def _packages(cls, v: list[str]) -> list[str]:
        return _packages_list(v)

    @model_validator(mode="after")
    def _complete(self) -> Action:
        need = {"fix_file": "path", "delete_file": "path", "install": "packages", "command": "command",
                "read_docs": "package"}[self.kind]
        if not getattr(self, need):
            raise ValueError(f"a {self.kind} action needs {need}")
        return self

    def target(self) -> str:
        """What a read_docs action reads: ``package`` or ``package:symbol``."""
        return f"{self.package}:{self.symbol}" if self.symbol else str(self.package)

    def describe(self) -> str:
        if self.kind == "install":
            return f"install {' '.join(self.packages)}"
        if self.kind == "command":
            return f"run `{self.command}`"
        if self.kind == "read_docs":
            return f"read the docs of {self.target()}"
        return f"{'fix' if self.kind == 'fix_file' else 'delete'} {self.path}"


class DebugPlan(BaseModel):
    """What to do about a failing test run."""

    summary: str = Field(description="One sentence: what the plan fixes.")
    actions: list[Action] = Field(description="Actions in the order they should run.", min_length=1)


class FileContent(BaseModel):
    path: ProjectPath = Field(description="Path relative to the project root.")
    content: str = Field(description="The whole file.")


class TemplateDraft(BaseModel):
    """An environment template as the model writes it (files as lists: flat schemas
    work with every structured-output server), with the projects that prove it."""

    name: str = Field(description="Short lowercase name, e.g. go.")
    description: str = Field(description="One line.")
    runtime: Literal["python", "node", "rust", "generic"]
    image: str = Field(description="Container image with the toolchain, for remote sandboxes.")
    setup_commands: list[str] = Field(default_factory=list)
    base_packages: list[str] = Field(default_factory=list)
    install_command: str = Field(description="Installs packages into $DEVLOOPER_ENV; contains {packages}.")
    env_links: list[str] = Field(default_factory=list)
    test_command: str
    results: Literal["junit", "jest", "cargo", "none"] = "none"
    results_file: str | None = None
    manifest: str
    guidance: str
    setup_files: list[FileContent] = Field(default_factory=list)
    example_files: list[FileContent] = Field(description="A minimal project whose tests pass.", min_length=1)
    failing_files: list[FileContent] = Field(description="The same project with one failing test.", min_length=1)

    def template_data(self) -> dict:
        """The fields of an ``EnvTemplate`` (validated by the caller)."""
        data = self.model_dump(exclude={"setup_files", "example_files", "failing_files"}, exclude_none=True)
        data["setup_files"] = {f.path: f.content for f in self.setup_files}
        data["example_files"] = {f.path: f.content for f in self.example_files}
        return data
