"""Checkpoint bytes per iteration: does the SQLite checkpoint database grow flat?

A scripted run of a realistic project (10 modules of about 3 KB and their
tests, about 60 KB of source; a verbose test run with about 20 KB of output
that always fails) goes ``N`` iterations, each rewriting two modules. Every
checkpoint the SQLite saver writes is summed per iteration (the checkpoint
blob, its metadata and the step's pending writes), and the bytes added per
iteration at the start of the run are compared with those at its end.

    PYTHONPATH=src .venv/bin/python benchmarks/checkpoint_growth.py 10 30
    PYTHONPATH=src:. .venv/bin/python benchmarks/checkpoint_growth.py 10 30 --postgres

With ``--postgres`` the same runs checkpoint to a Postgres server started for the
purpose (``tests/integration/postgres.py``: Debian's postgresql package), and the
bytes are those of the thread's rows in the saver's tables (checkpoints, channel
blobs, writes); what is compared is the bytes per iteration over the whole run
against those of the first 10 iterations.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import uuid

from devlooper import Context, ReplayChatModel
from devlooper.runner import run

MODULES = 10


def module(i: int, version: int) -> str:
    body = "".join(
        f"def f{i}_{k}(x):\n    \"\"\"Step {k} of module {i}, version {version}.\"\"\"\n    return x + {k} * {version}\n\n\n"
        for k in range(30)
    )
    return f"# module {i}, version {version}\n\n{body}"


def tests(i: int) -> str:
    # Verbose output: each test prints a long trace; one test of every module fails.
    return (
        f"from pkg.m{i} import f{i}_0\n\n\n"
        f"def test_passes_{i}():\n    print('trace line ' * 400)\n    assert f{i}_0(1) >= 1\n\n\n"
        f"def test_fails_{i}():\n    print('debug output ' * 400)\n    assert f{i}_0(1) == -1, 'x' * 500\n"
    )


def replies(iterations: int) -> dict:
    files = [{"path": f"pkg/m{i}.py", "purpose": "a module"} for i in range(MODULES)]
    files += [{"path": f"tests/test_m{i}.py", "purpose": "its tests"} for i in range(MODULES)]
    files.append({"path": "pkg/__init__.py", "purpose": "package"})
    out: dict = {"plan_project": {"notes": "a package", "files": files, "packages": []}, "generate_file:pkg/__init__.py": ""}
    for i in range(MODULES):
        out[f"generate_file:pkg/m{i}.py"] = module(i, 0)
        out[f"generate_file:tests/test_m{i}.py"] = tests(i)
    for it in range(1, iterations + 1):
        a, b = it % MODULES, (it + 3) % MODULES
        out[f"diagnose:{it}"] = f"iteration {it}: the modules return the wrong sign " + "because " * 100
        out[f"plan:{it}"] = {
            "summary": f"rewrite m{a} and m{b} (attempt {it})",
            "actions": [
                {"kind": "fix_file", "path": f"pkg/m{a}.py", "instructions": f"attempt {it}"},
                {"kind": "fix_file", "path": f"pkg/m{b}.py", "instructions": f"attempt {it}"},
            ],
        }
        out[f"fix_file:{it}:pkg/m{a}.py"] = module(a, it)
        out[f"fix_file:{it}:pkg/m{b}.py"] = module(b, it)
    return out


def bytes_per_iteration(db: str, thread: str) -> list[int]:
    """Bytes written to the database for each iteration (checkpoints grouped by the step's iteration)."""
    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT checkpoint_id, length(checkpoint) + length(metadata) FROM checkpoints WHERE thread_id = ? "
        "ORDER BY checkpoint_id",
        (thread,),
    ).fetchall()
    writes = dict(
        con.execute(
            "SELECT checkpoint_id, sum(length(value)) FROM writes WHERE thread_id = ? GROUP BY checkpoint_id", (thread,)
        ).fetchall()
    )
    # Which iteration a checkpoint belongs to: the test node's writes mark a new one.
    test_steps = {
        cid for (cid,) in con.execute(
            "SELECT DISTINCT checkpoint_id FROM writes WHERE thread_id = ? AND channel = 'test_runs'", (thread,)
        )
    }
    per: list[int] = []
    for cid, size in rows:
        if cid in test_steps or not per:
            per.append(0)
        per[-1] += size + (writes.get(cid) or 0)
    con.close()
    return per


async def one(iterations: int) -> tuple[list[int], dict]:
    with tempfile.TemporaryDirectory() as tmp:
        db, thread = f"{tmp}/growth.sqlite", uuid.uuid4().hex
        model = ReplayChatModel.from_replies(replies(iterations))
        ctx = Context(chat_model=model, max_iterations=iterations, loop_window=1000)
        final = await run("a package of ten modules", ctx, db=db, thread_id=thread)
        return bytes_per_iteration(db, thread), final


def postgres_bytes(url: str, thread: str) -> int:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(url) as con:
        total = 0
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
            row = con.execute(
                f"SELECT coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t WHERE thread_id = %s", (thread,)
            ).fetchone()
            total += int(row[0])
        return total


async def on_postgres(lengths: list[int]) -> None:
    from tests.integration.postgres import postgres_server  # noqa: PLC0415

    with postgres_server() as url:
        first = None
        for n in lengths:
            thread = uuid.uuid4().hex
            model = ReplayChatModel.from_replies(replies(n))
            ctx = Context(chat_model=model, max_iterations=n, loop_window=1000)
            final = await run("a package of ten modules", ctx, db=url, thread_id=thread)
            size = postgres_bytes(url, thread)
            per = size / n
            first = first or per
            print(
                f"postgres, {n} iterations ({final['status']}): {size / 1024 / 1024:.1f} MiB, "
                f"{per / 1024:.0f} KiB per iteration; ratio to the shortest run's {per / first:.2f}"
            )


async def main(lengths: list[int]) -> None:
    for n in lengths:
        per, final = await one(n)
        per = per[1:-1]  # the first test run's iteration and the finish step are not typical
        k = 3
        start, end = sum(per[:k]) / k, sum(per[-k:]) / k
        print(
            f"{n} iterations ({final['status']}, {final['iteration']} test runs): "
            f"{start / 1024:.0f} KiB per iteration at the start (iterations 2-{k + 1}), "
            f"{end / 1024:.0f} KiB at the end (last {k}); ratio {end / start:.2f}; total {sum(per) / 1024 / 1024:.1f} MiB"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("lengths", nargs="*", type=int, default=[10, 30])
    p.add_argument("--postgres", action="store_true", help="checkpoint to a Postgres server started for this")
    a = p.parse_args()
    asyncio.run(on_postgres(a.lengths) if a.postgres else main(a.lengths))
