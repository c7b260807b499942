"""What a run's report costs: the finish step that writes it and `devlooper report`
that rebuilds it from the checkpoints, on the checkpoint-growth scripted thread.

    PYTHONPATH=src .venv/bin/python benchmarks/report_cost.py 10
    PYTHONPATH=src .venv/bin/python benchmarks/report_cost.py 30
"""
import asyncio, sys, tempfile, time, uuid, statistics
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from checkpoint_growth import replies
from devlooper import Context, ReplayChatModel
from devlooper.runner import run
from devlooper.archive import rebuild_report
async def main(n):
    with tempfile.TemporaryDirectory() as tmp:
        db, thread = f"{tmp}/g.sqlite", uuid.uuid4().hex
        ctx = Context(chat_model=ReplayChatModel.from_replies(replies(n)), max_iterations=n, loop_window=1000, output_dir=f"{tmp}/out")
        final = await run("a package of ten modules", ctx, db=db, thread_id=thread)
        print("finish node seconds:", round(final["timings"]["finish"], 3), "test total:", round(final["timings"]["test"], 2))
        times = []
        for _ in range(5):
            t = time.perf_counter(); await rebuild_report(thread, db=db, out=f"{tmp}/r"); times.append(time.perf_counter() - t)
        print(f"{n} iterations: devlooper report median {statistics.median(times)*1000:.0f} ms")
        import os; print("report.html KiB", os.path.getsize(f"{tmp}/r/report.html")//1024, "report.json KiB", os.path.getsize(f"{tmp}/r/report.json")//1024)
asyncio.run(main(int(sys.argv[1])))
