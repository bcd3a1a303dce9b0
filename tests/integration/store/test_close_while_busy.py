"""Closing a SQLite store while a worker thread is still inside a transaction waits for it instead of crashing.

A caller cancelled mid-write (a failed fixture, a stopped server) leaves the worker thread running; closing a
sqlite3 connection under a running statement kills the interpreter with a segmentation fault. The check runs
in a child process, so a regression fails this test rather than ending the whole suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys, threading, time
from bcconnect.store._sqlite import SqliteBackend

backend = SqliteBackend(sys.argv[1], readers=2)
backend.run_write(lambda tx: tx.execute("CREATE TABLE t (x INTEGER)"))


def long_write(tx):
    for i in range(150_000):
        tx.execute("INSERT INTO t VALUES (?)", (i,))


worker = threading.Thread(target=backend.run_write, args=(long_write,))
worker.start()
time.sleep(0.2)  # the write is under way
backend.close()
assert not worker.is_alive(), "close returned while the write was still running"
print("closed after the write")
"""


def test_closing_waits_for_a_running_write(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "store.db")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, (child.returncode, child.stderr[-2000:])
    assert "closed after the write" in child.stdout
