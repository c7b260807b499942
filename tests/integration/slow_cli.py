"""The ``devlooper`` command with a replayed model that takes its time.

``python -m tests.integration.slow_cli SECONDS ARGS...`` runs ``devlooper ARGS``
with every model reply delayed by SECONDS, so a test driving a terminal can see
what the live view shows while a model call is in flight.
"""

from __future__ import annotations

import asyncio
import sys

from devlooper import cli
from devlooper.models import ReplayChatModel


def main() -> int:
    delay = float(sys.argv[1])
    answer = ReplayChatModel._agenerate

    # The same parameters as the method it replaces: LangChain passes ``run_manager``
    # (which carries the call key) only to a method that names it.
    async def slow(self, messages, stop=None, run_manager=None, **kwargs):
        await asyncio.sleep(delay)
        return await answer(self, messages, stop, run_manager, **kwargs)

    ReplayChatModel._agenerate = slow
    return cli.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
