"""Progress bars: counts and rates on a terminal, silence when the output is not one."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

from bcconnect.cli.ingest_cmd import sync_progress
from bcconnect.cli.progress import Bars
from bcconnect.ingest import SyncReport

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _plain(text: str) -> str:
    """Terminal output without its colour and cursor codes."""
    return _ANSI.sub("", text)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_show_each_adapter_count_and_rate_on_a_terminal() -> None:
    """The sync callback draws one bar per adapter with its fetched count and a records/s rate."""
    screen = _Terminal()
    with Bars("syncing", stream=screen) as bars:
        progress = sync_progress(bars)
        progress("rl4", SyncReport(adapter="rl4", fetched=600))
        time.sleep(0.05)
        progress("rl4", SyncReport(adapter="rl4", fetched=1200))
        progress("rna", SyncReport(adapter="rna", fetched=50))
    drawn = _plain(screen.getvalue())
    assert "syncing rl4" in drawn
    assert "1,200" in drawn
    assert "syncing rna" in drawn
    assert "records/s" in drawn


def test_bars_stay_silent_when_not_on_a_terminal() -> None:
    """Redirected output carries no bar (scripts and logs see only results)."""
    redirected = io.StringIO()
    with Bars("syncing", stream=redirected) as bars:
        bars.update("rl4", completed=1200)
    assert redirected.getvalue() == ""


def _generate(tmp_path: Path, *, stderr: int) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bcconnect.cli.main",
            "sandbox",
            "generate",
            "--persons",
            "200",
            "--out",
            str(tmp_path / "g"),
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        timeout=120,
        check=False,
    )


def test_sandbox_generate_draws_on_a_terminal_and_prints_a_readable_summary(tmp_path: Path) -> None:
    """Under a pseudo-terminal the bar counts persons to the total; the summary is lines, not a Python dict."""
    controller, terminal = pty.openpty()
    try:
        result = _generate(tmp_path, stderr=terminal)
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
    drawn = _plain(b"".join(chunks).decode("utf-8", "replace"))
    assert result.returncode == 0
    assert "generating population" in drawn
    assert "200/200" in drawn
    assert "persons/s" in drawn
    summary = result.stdout.decode()
    assert "{" not in summary
    assert "total:" in summary


def test_sandbox_generate_is_silent_on_stderr_when_redirected(tmp_path: Path) -> None:
    """Piped, the command writes its summary and nothing else."""
    result = _generate(tmp_path, stderr=subprocess.PIPE)
    assert result.returncode == 0
    assert result.stderr == b""
