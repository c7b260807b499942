"""Fingerprints: each test run reduced to hashes of the state of the code.

Loop detection compares these rather than the model's words: two plans that
read differently but leave the same files behind are the same state, and the
same failure reported with another line number, address, temp path or timing
is the same failure.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from .memory import content_hash
from .layers import Layer
from .state import Fingerprint, State, TestRun

# Lines of output kept as the failure signature when no failing test was parsed.
TAIL_LINES = 15

_NORMALISE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "0x?"),
    (re.compile(r"\bline \d+\b"), "line ?"),
    (re.compile(r"(\.\w{1,8}):\d+(?::\d+)?\b"), r"\1:?"),  # file.py:12 or file.rs:12:5
    # A temp path differs on every run (and every sandbox): drop it up to a ':'
    # or a quote, after the line numbers above have been cut from its end.
    (re.compile(r"(?:/private)?/(?:tmp|var/tmp|var/folders|dev/shm)/[^\s:'\",()\[\]]*"), "<tmp>"),
    (re.compile(r"[A-Za-z]:\\[^\s:'\"]*\\Temp\\[^\s:'\",()]*"), "<tmp>"),
    # The local sandbox's own directory (``devlooper-<run>-<random>``) wherever TMPDIR puts
    # it: a resumed run gets a new one. What follows it inside the project stays.
    (re.compile(r"(?:/[^\s/:'\",()\[\]]+)*/devlooper-\w+-\w+"), "<tmp>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:s|ms|us|µs|sec|secs|seconds)\b"), "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b"), "<time>"),  # 12:03:04 clock times
    (re.compile(r"[ \t]+"), " "),
]


def normalise(text: str) -> str:
    """Remove what changes between two runs of the same failure."""
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return text.strip()


# The line ``bounded.clip`` and the sandboxes' bounded buffers put where they dropped text.
_DROPPED = re.compile(r"^\[\.\.\. \d+ (?:characters|bytes) dropped \.\.\.\]$")


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def message_signature(message: str) -> str:
    """One failure's message, normalised then hashed. Give it the whole message: a
    clipped one depends on where the clip fell, which the noise normalised here moves."""
    return _hash(normalise(message))


def _tail(output: str) -> list[str]:
    """The output's last lines, from after the last drop: the line the drop cut in two
    starts wherever the dropped length put it, and the drop's own line counts it."""
    lines = output.splitlines()
    cuts = [i for i, line in enumerate(lines) if _DROPPED.match(line)]
    if cuts:
        lines = lines[cuts[-1] + 2 :]
    return [normalise(ln) for ln in lines if ln.strip()][-TAIL_LINES:]


def failure_signature(run: TestRun) -> str:
    """Failing test ids with their normalised errors; the output's tail when none were parsed."""
    if run["exit_code"] == 0:
        return _hash(["green"])
    failures = sorted(
        {(f["name"], f.get("signature") or message_signature(f["message"])) for f in run.get("failures", [])}
    )
    if failures:
        return _hash([run["timed_out"], failures])
    return _hash([run["exit_code"], run["timed_out"], _tail(run["output"])])


def workspace_hash(files: dict[str, str]) -> str:
    return _hash(sorted((path, content_hash(content)) for path, content in files.items()))


def layers_hash(layers: list[Layer]) -> str:
    return _hash([(layer["kind"], layer["spec"]) for layer in layers])


def plan_hash(plan: dict | None) -> str | None:
    """The plan's actions, not its summary: the same actions in other words are the same plan."""
    if not plan or not plan.get("actions"):
        return None
    actions = [{k: v for k, v in a.items() if v not in (None, "", [])} for a in plan["actions"]]
    return _hash(actions)


def fingerprint(state: State, run: TestRun) -> Fingerprint:
    """The fingerprint of ``run``, taken on the state it ran against."""
    it = run["iteration"]
    files = state.get("files", {})
    layers = state.get("layers", [])
    plans = [p for p in state.get("plans", []) if p["iteration"] == it - 1]
    # One iteration may create and delete the same path (a plan's delete, then a command
    # that regenerates it): a missing hash is None, which sorts as "".
    edits = sorted(
        (e["path"], e["before"] or "", e["after"] or "") for e in state.get("edits", []) if e["iteration"] == it - 1
    )
    # What a retry must differ in to be a new attempt: an install depends on the
    # layers that existed before its iteration, a command also on the files.
    workspace = workspace_hash(files)
    before = layers_hash([x for x in layers if x["iteration"] < it - 1])
    contexts = {"install": _hash([before]), "command": _hash([before, workspace])}
    # What the plan was applied to: the state of the run before (nothing changes the
    # files or layers between a run and the plan made after it).
    previous = state.get("fingerprints", [])
    applied_to = _hash([previous[-1]["workspace"], previous[-1]["layers"]]) if previous else None
    steps = [
        {"kind": r["kind"], "target": r["target"], "ok": r["ok"], "context": contexts[r["kind"]]}
        for r in state.get("action_results", [])
        if r["iteration"] == it - 1 and r["kind"] in contexts
    ]
    return Fingerprint(
        iteration=it,
        signature=failure_signature(run),
        workspace=workspace,
        layers=layers_hash(layers),
        plan=plan_hash(plans[-1]) if plans else None,
        patch=_hash(edits) if edits else None,
        steps=steps,
        applied_to=applied_to,
        exit_code=run["exit_code"],
        passed=run["passed"],
        failed=run["failed"],
    )
