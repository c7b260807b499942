"""Remote sandboxes kept alive for a paused run, by run id, so the run reconnects.

The checkpointed state stays backend-neutral: a sandbox is a cache of it. What
lets a resume reuse a live remote sandbox is this side table, one small JSON
file per run under the user data directory (``<data>/devlooper/sandboxes``):
the backend, the provider's sandbox id and the environment (template
fingerprint and layers) it holds. Whoever continues the run (this process, a
later ``devlooper resume``, another server worker on the same machine or
sharing the data directory) takes the record, and reconnects when the sandbox
is still alive and holds a prefix of the state's layers; otherwise it builds a
new one from the state. Taking is a rename, so two workers never both attach
to one sandbox.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

from platformdirs import user_data_dir

from ..layers import Layer
from ..templates.base import EnvTemplate


def directory() -> Path:
    return Path(user_data_dir("devlooper")) / "sandboxes"


def _path(run_id: str) -> Path:
    return directory() / f"{hashlib.sha256(run_id.encode()).hexdigest()[:32]}.json"


def record(run_id: str, backend: str, sandbox_id: str, template: EnvTemplate, layers: list[Layer]) -> None:
    """Note that ``sandbox_id`` (alive for a while) holds ``template`` with ``layers``."""
    target = _path(run_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "run_id": run_id,
        "backend": backend,
        "sandbox_id": sandbox_id,
        "environment": template.environment_fingerprint(),
        "layers": [dict(layer) for layer in layers],
    }
    scratch = target.with_suffix(f".{uuid.uuid4().hex}.tmp")
    scratch.write_text(json.dumps(data))
    os.replace(scratch, target)


def take(run_id: str) -> dict | None:
    """The run's record, removed so that nobody else takes it; None if there is none."""
    source = _path(run_id)
    claimed = source.with_suffix(f".{uuid.uuid4().hex}.taken")
    try:
        os.rename(source, claimed)
    except FileNotFoundError:
        return None
    try:
        data = json.loads(claimed.read_text())
    except (OSError, ValueError):
        return None  # a damaged record: the run builds a new sandbox
    finally:
        claimed.unlink(missing_ok=True)
    return data if isinstance(data, dict) and data.get("run_id") == run_id else None
