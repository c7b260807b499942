"""Search/replace patches: how the model edits a file too large to be shown whole.

The model answers with blocks

    <<<<<<< SEARCH
    lines copied exactly from the file
    =======
    the lines that replace them
    >>>>>>> REPLACE

Each SEARCH must occur exactly once in the file; a patch applies whole or not at
all, and what is wrong with it goes back to the model as a refusal.
"""

from __future__ import annotations

import re

BLOCK = re.compile(r"^<<<<<<< SEARCH\n(.*?)\n?^=======\n(.*?)\n?^>>>>>>> REPLACE$", re.S | re.M)


class PatchError(ValueError):
    """A patch that cannot be applied, with what to fix."""


def apply_patch(content: str, reply: str) -> str:
    blocks = BLOCK.findall(reply)
    if not blocks:
        raise PatchError("the reply holds no <<<<<<< SEARCH / ======= / >>>>>>> REPLACE block")
    for n, (search, replace) in enumerate(blocks, 1):
        if not search.strip():
            raise PatchError(f"block {n} has an empty SEARCH part")
        found = content.count(search)
        if found != 1:
            head = search.strip().splitlines()[0][:120]
            why = "does not occur in the file (copy the lines exactly)" if not found else (
                f"occurs {found} times (include more lines to make it unique)"
            )
            raise PatchError(f"block {n}: the SEARCH part starting {head!r} {why}")
        content = content.replace(search, replace, 1)
    return content
