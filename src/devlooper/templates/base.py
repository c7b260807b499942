"""Environment templates: backend-neutral data.

A template says what a project's environment is and how to test it; each
sandbox backend turns it into its own environment (a cached directory on this
machine, a Modal ``Image``, an E2B sandbox template). Built-in templates and
user templates are the same TOML schema (see docs/templates.md).

Commands may use ``$DEVLOOPER_ENV``: the environment directory, which holds
what installs add (a venv, ``node_modules``, a cargo home) and is cached by the
ordered layers; the workspace holds only the project's files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..paths import normalize


class EnvTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Short name used on the command line.", pattern=r"^[A-Za-z0-9][\w.-]*$")
    description: str = Field(description="One line shown by `devlooper templates`.")
    runtime: Literal["python", "node", "rust", "generic"] = Field(
        default="generic",
        description="Which toolchain the local backend prepares: python gets a venv, node and rust "
        "get an environment directory their tools are pointed at, generic gets an empty one.",
    )
    image: str = Field(default="debian:bookworm-slim", description="Base container image for remote backends.")
    workdir: str = Field(default="/workspace", description="Project directory in remote backends.")
    setup_files: dict[str, str] = Field(
        default_factory=dict, description="Files every project starts with (configs the test command needs)."
    )
    setup_commands: list[str] = Field(
        default_factory=list, description="Commands that prepare the environment, before base packages."
    )
    base_packages: list[str] = Field(default_factory=list, description="Packages the test harness needs.")
    install_command: str = Field(description="Installs packages; {packages} is replaced by their names.")
    env_links: list[str] = Field(
        default_factory=list,
        description="Entries of $DEVLOOPER_ENV linked into the workspace under the same name (node_modules).",
    )
    test_command: str = Field(description="Runs every test (no fail-fast); exit status 0 means green.")
    results: Literal["junit", "jest", "cargo", "none"] = Field(
        default="none", description="Format of the structured test results: JUnit XML, Jest JSON, cargo's summary."
    )
    results_file: str | None = Field(
        default=None, description="Workspace path the test command writes its results to (junit, jest)."
    )
    manifest: str = Field(description="File that lists the project's packages (requirements.txt, package.json).")
    docs_command: str | None = Field(
        default=None,
        description="Prints an installed package's documentation, in the installed version, for a read_docs "
        "action: {package} and {symbol} are replaced by them, shell-quoted ({symbol} may be empty).",
    )
    ignore: list[str] = Field(
        default_factory=list,
        description="Build outputs and caches the tools write into the workspace (target, __pycache__): "
        "not project files, so never taken into the state or the output. fnmatch patterns on a name or a path.",
    )
    local_packages: dict[str, str] = Field(
        default_factory=dict,
        description="Packages on this machine the project may install, by name -> absolute host path "
        "(a crate, a Python or npm package directory). Only these host paths are ever visible in the local "
        "sandbox (read-only, at the same path); an install names them by their name here, never by path. "
        "Their contents are part of the environment's cache key.",
    )
    guidance: str = Field(default="", description="Conventions the model must follow for this template.")
    example_files: dict[str, str] = Field(
        default_factory=dict, description="A minimal project whose tests pass: proves the template works."
    )

    @field_validator("setup_files", "example_files")
    @classmethod
    def _relative_paths(cls, files: dict[str, str]) -> dict[str, str]:
        return {normalize(path): content for path, content in files.items()}

    @field_validator("local_packages")
    @classmethod
    def _declared_packages(cls, packages: dict[str, str]) -> dict[str, str]:
        for name, path in packages.items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
                raise ValueError(f"local package name {name!r} must be a plain package name")
            if not os.path.isabs(path):
                raise ValueError(f"local package {name!r} must be an absolute path, not {path!r}")
        return {name: os.path.normpath(path) for name, path in packages.items()}

    @field_validator("install_command")
    @classmethod
    def _has_packages(cls, command: str) -> str:
        if "{packages}" not in command:
            raise ValueError("must contain {packages}")
        return command

    def not_project(self) -> list[str]:
        """Everything in the workspace that is not the project's: ``ignore``, the
        results file and the links into the environment."""
        return [*self.ignore, *([self.results_file] if self.results_file else []), *self.env_links]

    def environment_fingerprint(self) -> str:
        """What determines the environment (not the tests): keys the environment cache."""
        fields = ("runtime", "image", "setup_commands", "base_packages", "install_command", "local_packages")
        data = {name: getattr(self, name) for name in fields}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
