"""A person at a real terminal (a pty): approve the plan, Ctrl-C at the next prompt exits
at once with the run checkpointed and the command that continues it; `devlooper resume`
asks again and the answer finishes the run. Without a terminal, nothing hangs."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.integration.test_cli_loop import cassette
from tests.integration.test_loop import GOOD
from tests.integration.test_loop_memory import fix

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _controlling_terminal() -> None:
    # A new session whose controlling terminal is the pty: Ctrl-C there sends SIGINT.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A devlooper process on a pty, read until a pattern shows up."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        env = {**os.environ, "COLUMNS": "1000", "TERM": "dumb"}
        self.proc = subprocess.Popen([sys.executable, "-m", "devlooper", *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, preexec_fn=_controlling_terminal)
        os.close(slave)
        self.text = ""

    def expect(self, pattern: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in ANSI.sub("", self.text):
            assert time.monotonic() < deadline, f"never saw {pattern!r}:\n{self.text[-3000:]}"
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.text += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the process closed the terminal
                    assert pattern in ANSI.sub("", self.text), f"exited before {pattern!r}:\n{self.text[-3000:]}"

    def send(self, data: str) -> None:
        os.write(self.master, data.encode())

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        while select.select([self.master], [], [], 0.1)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.text += chunk.decode(errors="replace")
        os.close(self.master)
        return code

    @property
    def screen(self) -> str:
        return ANSI.sub("", self.text).replace("\r", "")


def test_approve_then_ctrl_c_at_a_prompt_then_resume(tmp_path: Path):
    model = cassette(tmp_path, **{"plan:5": fix("use + as the human said"), "fix_file:5:adder.py": GOOD})
    db, out = tmp_path / "db.sqlite", tmp_path / "out"
    term = Terminal("run", "a tiny library", "--model", model, "--output", str(out), "--db", str(db),
                    "--thread-id", "tty", "--interactive")
    term.expect("plan>")
    assert "adder.py" in term.screen
    term.send("\r")  # Enter approves
    term.expect("guidance>")  # the loop detector gave up at run 5
    term.send("\x03")  # Ctrl-C, once
    code = term.wait(timeout=30)  # exits without waiting for Enter (which would hang it for good)
    assert code == 130, term.screen
    assert "interrupted; the run is checkpointed" in term.screen
    assert f"devlooper resume tty --db {db}" in term.screen.replace("\n", "")
    assert not out.exists()

    again = Terminal("resume", "tty", "--db", str(db))
    again.expect("guidance>")  # asked again, the plan is not
    again.send("add must return a + b\r")
    assert again.wait(timeout=120) == 0, again.screen
    assert "plan>" not in again.screen
    assert (out / "adder.py").read_text() == GOOD


def test_without_a_terminal_an_interactive_run_pauses_and_exits(tmp_path: Path):
    model = cassette(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "devlooper", "run", "a tiny library", "--model", model, "--output", str(tmp_path / "o"),
         "--db", str(tmp_path / "db.sqlite"), "--thread-id", "pipe", "--interactive"],
        stdin=subprocess.PIPE, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "1000"},
    )
    assert done.returncode == 3, done.stderr
    assert "paused (plan)" in done.stderr and "devlooper resume pipe" in done.stderr
