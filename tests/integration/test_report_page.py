"""report.html in a real browser: headless Chromium (Debian's ``chromium``) renders
the page of a scripted red-then-green run; every iteration, the chart and a diff
are in the rendered page, a screenshot is kept as a test artifact, and the page
makes no network request (the requests it makes are read through Chromium's
DevTools protocol)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import run_scripted
from tests.integration.test_loop import BAD, FIX, GOOD, replies

httpx = pytest.importorskip("httpx")
websockets = pytest.importorskip("websockets", reason="websockets (with the server extra) talks to Chromium")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("DEVLOOPER_TEST_ARTIFACTS") or ROOT / "test-artifacts")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip("no headless Chromium here (apt-get install chromium; `make test` installs it as root)")


async def page_requests(page: Path, tmp_path: Path) -> list[str]:
    """The URLs a page asks for while it loads, seen through the DevTools protocol:
    the page's own requests only (the browser's background traffic is not the page's)."""
    profile = Path(tempfile.mkdtemp(prefix="cdp-profile-", dir=tmp_path))  # a new port file each time
    proc = subprocess.Popen(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "--no-first-run", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.1)
        port = port_file.read_text().split()[0]
        async with httpx.AsyncClient() as http:
            target = (await http.put(f"http://127.0.0.1:{port}/json/new?about:blank")).json()
        seen: list[str] = []
        async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
            ids = iter(range(1, 1000))

            async def send(method: str, **params) -> None:
                """Send a command and wait for its answer: Network must be on before the page loads."""
                sent = next(ids)
                await ws.send(json.dumps({"id": sent, "method": method, "params": params}))
                while True:
                    message = json.loads(await ws.recv())
                    if message.get("method") == "Network.requestWillBeSent":
                        seen.append(message["params"]["request"]["url"])
                    if message.get("id") == sent:
                        return

            await send("Network.enable")
            await send("Page.enable")
            await send("Page.navigate", url=page.as_uri())
            loaded = False
            deadline = asyncio.get_running_loop().time() + 30
            while asyncio.get_running_loop().time() < deadline:
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 1.5 if loaded else 30))
                except asyncio.TimeoutError:
                    break  # loaded, and nothing more asked for
                if message.get("method") == "Network.requestWillBeSent":
                    seen.append(message["params"]["request"]["url"])
                elif message.get("method") == "Page.loadEventFired":
                    loaded = True
            assert loaded, "the page never finished loading"
        return [url for url in seen if url != page.as_uri()]
    finally:
        proc.terminate()
        proc.wait(10)


def browse(page: Path, tmp_path: Path, *flags: str) -> str:
    """Render ``page`` headless; return the DOM after rendering."""
    done = subprocess.run(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
            "--virtual-time-budget=3000", *flags, page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


async def test_the_report_page_renders_offline_with_every_iteration_the_chart_and_a_diff(tmp_path: Path, output_dir: Path):
    chromium()
    script = replies(BAD, **{"diagnose:1": "add subtracts", "plan:1": FIX, "fix_file:1:adder.py": GOOD})
    state = await run_scripted(script, output_dir=str(output_dir))
    assert state["status"] == "passed"
    page = output_dir / ".devlooper" / "report.html"

    dom = browse(page, tmp_path, "--dump-dom")
    for section in ("iteration-0", "iteration-1", "iteration-2"):
        assert f'id="{section}"' in dom
    assert dom.count('class="bar"') == 2 and '<svg id="chart"' in dom
    assert "return a + b" in dom and "tests/test_adder.py::test_add" in dom and "add subtracts" in dom

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    browse(page, tmp_path, "--window-size=1000,2400", f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000
    assert await page_requests(page, tmp_path) == []  # the page loads nothing from anywhere

    # The check can fail: a page that does fetch something is seen asking for it.
    fetching = tmp_path / "fetching.html"
    fetching.write_text('<html><body><img src="http://devlooper.invalid/x.png"></body></html>')
    assert await page_requests(fetching, tmp_path) == ["http://devlooper.invalid/x.png"]
