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

# A package spec as pip, npm or cargo take it: a name, extras, a version bound, a path to a local
# package, or an option of the install command (cargo add's --path, --features, --dev).
# Anything a shell would interpret is refused before it reaches a command line.
PACKAGE_SPEC = re.compile(r"^(?:--?[A-Za-z]|[A-Za-z0-9@_./])[A-Za-z0-9._\-\[\],<>=!~^*/@:+ ]*$")


def _package(spec: str) -> str:
    spec = spec.strip()
    if not PACKAGE_SPEC.match(spec):
        raise ValueError(f"not a package name or version spec: {spec!r}")
    return spec


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
        return [_package(p) for p in v]

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
        return None if v is None else _package(v)

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str | None) -> str | None:
        if v and not SYMBOL.match(v.strip()):
            raise ValueError(f"not a symbol name: {v!r}")
        return v.strip() if v else None

    @field_validator("packages")
    @classmethod
    def _packages(cls, v: list[str]) -> list[str]:
        return [_package(p) for p in v]

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
