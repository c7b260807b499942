"""Budgets: every limit on what one plan, one file, one prompt or the state may cost.

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
# Characters of one prompt (all its messages). Over it, the largest parts (a huge
# file, a long output) are clipped, head and tail kept, until the prompt fits.
MAX_PROMPT_CHARS = 120_000

# --- the state (what every checkpoint stores) ---------------------------------------
MAX_DIFF_CHARS = 8_000  # characters of one edit's diff kept (its hashes and line counts stay exact)
# Characters kept of the diff of an edit older than the newest iteration: a loop warning
# shows 400 of them (memory.EDIT_EXCERPT), the history only the line counts.
OLD_DIFF_CHARS = 600
FULL_OUTPUT_RUNS = 1  # newest test runs whose output and failures are kept as stored (only the newest is read)
OLD_OUTPUT_CHARS = 1_000  # characters kept of an older test run's output (head and tail)
OLD_FAILURES_KEPT = 10  # failing tests named in an older test run (its counts stay exact)
OLD_FAILURE_CHARS = 150  # characters kept of each of those failures' message
