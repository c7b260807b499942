"""Budgets: every limit on what one plan, one file, one prompt, one model call,
the state or the whole run may cost.

A model's plan is data: nothing bounds how many actions it holds, how large a
file it writes or how long a name it picks. These are the caps, in one place,
each named for what it bounds. What goes over a cap is refused and the refusal
goes back to the model (an ``ActionResult`` with ``ok=False``), never a crash.
"""

from __future__ import annotations

from .sandboxes.workspace import FILE_CAP

# --- one plan ------------------------------------------------------------------
MAX_PLAN_ACTIONS = 20  # actions of one debug plan carried out; the rest are refused
MAX_PLAN_FILES = 40  # distinct files one plan (debug or generation) may write or delete

# --- one file ------------------------------------------------------------------
# Bytes of one file the model writes (fix_file or generation): the same cap a file
# read back from a sandbox has, so whatever the model may write can be read back.
MAX_FILE_BYTES = FILE_CAP
# The OS limits a path must fit (Linux): bytes of one name (NAME_MAX), and bytes of a
# project path, kept well inside PATH_MAX (4096) once joined to a sandbox's root.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024

# --- one prompt ----------------------------------------------------------------
# Tokens of one prompt (all its messages), by default; ``--max-prompt-tokens`` sets
# it per run. Counted with the model's tokenizer where one is at hand (tiktoken),
# else estimated at CHARS_PER_TOKEN. Over it, the largest parts (a long output,
# the code shown) are clipped, head and tail kept, until the prompt fits.
MAX_PROMPT_TOKENS = 30_000
CHARS_PER_TOKEN = 4  # the estimate when no tokenizer is available
MAX_PROMPT_CHARS = MAX_PROMPT_TOKENS * CHARS_PER_TOKEN
# Shares of the prompt budget the parts of a prompt that grow with the project get.
CODE_SHARE = 0.4  # code shown to diagnose (whole files, or retrieved chunks)
FIX_FILE_SHARE = 0.5  # the file to fix: shown whole below this, else as chunks answered with a patch
DOCS_CHARS = 6_000  # characters of one read_docs answer kept (in the state and the next prompt)

# --- one model call ---------------------------------------------------------------
STRUCTURED_RETRIES = 2  # a structured reply that does not validate is asked for again this often
MODEL_RETRIES = 4  # retries of a call that hit a rate limit, a 5xx, a timeout or a dropped connection
MAX_RETRY_WAIT = 120.0  # seconds of waiting between those retries, in all, before the run stops
# An embedding call that fails falls back to BM25 (prompts/semantic.py): it is given less
# time and fewer retries than a model call, which a run cannot do without.
EMBEDDING_TIMEOUT = 60.0
EMBEDDING_RETRIES = 1

# --- the state (what every checkpoint stores) ---------------------------------------
MAX_DIFF_CHARS = 8_000  # characters of one edit's diff kept (its hashes and line counts stay exact)
# Characters kept of the diff of an edit older than the newest iteration: a loop warning
# shows 400 of them (prompts.history.EDIT_EXCERPT), the history only the line counts.
OLD_DIFF_CHARS = 600
FULL_OUTPUT_RUNS = 1  # newest test runs whose output and failures are kept as stored (only the newest is read)
OLD_OUTPUT_CHARS = 1_000  # characters kept of an older test run's output (head and tail)
OLD_FAILURES_KEPT = 10  # failing tests named in an older test run (its counts stay exact)
OLD_FAILURE_CHARS = 150  # characters kept of each of those failures' message


# --- the whole run ----------------------------------------------------------------
def over_budget(usage: dict[str, float], max_tokens: int, max_cost: float, cost: float | None) -> str | None:
    """Why the run's spending is over its budget (``--max-tokens``, ``--max-cost``; 0 is no
    limit), or None. Checked before each iteration: one that began is finished."""
    used = int(usage.get("input_tokens", 0) + usage.get("output_tokens", 0))
    if max_tokens and used >= max_tokens:
        return f"used {used} tokens of the --max-tokens {max_tokens} budget"
    if max_cost and cost is not None and cost >= max_cost:
        return f"spent an estimated ${cost:.4f} of the --max-cost ${max_cost:g} budget"
    return None
