"""Environment templates: backend-neutral data.

A template says what a project's environment is and how to test it; each
sandbox backend turns it into its own environment (a local venv, a Modal
``Image``, an E2B sandbox template).
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EnvTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Short name used on the command line.")
    description: str = Field(description="One line shown by `devlooper templates`.")
    runtime: Literal["python", "node", "rust", "generic"] = Field(
        description="Which toolchain the local backend isolates (python gets a venv)."
    )
    image: str = Field(description="Base container image for remote backends (e2b, modal).")
    workdir: str = Field(default="/workspace", description="Project directory in remote backends.")
    setup_files: dict[str, str] = Field(
        default_factory=dict, description="Files every project starts with (configs the test command needs)."
    )
    setup_commands: list[str] = Field(
        default_factory=list, description="Commands that prepare the environment, before base packages."
    )
    base_packages: list[str] = Field(default_factory=list, description="Packages the test harness needs.")
    install_command: str = Field(description="Installs packages; {packages} is replaced by their names.")
    test_command: str = Field(description="Runs the project's tests; exit status 0 means green.")
    manifest: str = Field(description="File that lists the project's packages (requirements.txt, package.json).")
    results: Literal["junit", "jest", "cargo", "none"] = Field(
        default="none", description="How structured test results are read."
    )
    guidance: str = Field(default="", description="Conventions the model must follow for this template.")

    def environment_fingerprint(self) -> str:
        """What determines the environment (not the tests): keys the environment cache."""
        fields = ("runtime", "image", "setup_commands", "base_packages", "install_command")
        data = {name: getattr(self, name) for name in fields}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
