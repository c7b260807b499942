"""Runs that open the same new SQLite checkpoint database at once all get a saver."""

import asyncio

from devlooper.runner import open_saver


async def test_runs_opening_one_new_sqlite_database_together_all_start(tmp_path):
    async def open_and_read(path) -> None:
        async with open_saver(path) as saver:
            await saver.conn.execute("SELECT count(*) FROM checkpoints")

    for round_ in range(60):  # the race is in the first instants of a new file: many new files
        path = tmp_path / f"runs-{round_}.sqlite"
        results = await asyncio.gather(*(open_and_read(path) for _ in range(4)), return_exceptions=True)
        assert not [r for r in results if isinstance(r, BaseException)], results
