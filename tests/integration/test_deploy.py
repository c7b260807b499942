"""The server deployment of docs/deploy.md: ``langgraph dockerfile`` turns our
langgraph.json into a Dockerfile offline (no Docker daemon, no network)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = shutil.which("langgraph", path=str(Path(sys.executable).parent)) or shutil.which("langgraph")
pytestmark = pytest.mark.skipif(CLI is None, reason="the langgraph CLI (the server extra) is not installed")


def test_langgraph_dockerfile_builds_a_dockerfile_from_our_config_offline(tmp_path: Path):
    out = tmp_path / "Dockerfile"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_PROXY") and not k.endswith("_proxy")}
    done = subprocess.run(
        [CLI, "dockerfile", "-c", str(ROOT / "langgraph.json"), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**env, "DOCKER_HOST": "unix:///nonexistent"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = out.read_text()
    assert text.startswith("FROM langchain/langgraph-api")
    graphs = json.loads(text.split("LANGSERVE_GRAPHS='", 1)[1].split("'", 1)[0])
    assert graphs == json.loads((ROOT / "langgraph.json").read_text())["graphs"]
    assert "ADD . /deps/" in text  # the project itself is installed into the image
