"""The SQLite backend: one writer connection, a few reader connections, WAL so readers never block the writer.

Every call runs in a worker thread (the store hands it to ``anyio.to_thread``); connections are created with
``check_same_thread=False`` and each is used by one thread at a time (the writer behind a limiter of one, the
readers through a queue as large as the reader limiter).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from bcconnect.errors import StoreError
from bcconnect.store._tx import translate_errors

T = TypeVar("T")
_BUSY_TIMEOUT_MS = 10_000
#: how long closing waits for a transaction still running in a worker thread (one the caller stopped waiting for)
_CLOSE_WAIT_SECONDS = 30.0
#: the writer's page cache (KiB; SQLite's default is 2 MiB): each resource adds rows to a dozen index b-trees
#: at scattered keys (token hashes), so a larger cache keeps their inner pages in memory as the store grows
_WRITER_CACHE_KIB = 64 * 1024


class SqliteTx:
    """A :class:`~bcconnect.store.Tx` over one sqlite3 connection."""

    dialect: Literal["sqlite"] = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> None:
        """Run one statement."""
        with translate_errors("sqlite"):
            self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """Run one statement per row."""
        with translate_errors("sqlite"):
            self._conn.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Every row of a query."""
        with translate_errors("sqlite"):
            return self._conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        with translate_errors("sqlite"):
            row: tuple[Any, ...] | None = self._conn.execute(sql, params).fetchone()
            return row

    def executescript(self, script: str) -> None:
        """Run a migration script inside the open transaction."""
        with translate_errors("sqlite migration"):
            for statement in _statements(script):
                self._conn.execute(statement)


def _statements(script: str) -> list[str]:
    """Split a script into statements with sqlite3's own completeness test (our scripts have no triggers)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                out.append(current)
            current = ""
    if current.strip() and not current.strip().startswith("--"):
        out.append(current)
    return out


def _connect(path: str) -> sqlite3.Connection:
    with translate_errors(f"opening {path}"):
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, uri=path.startswith("file:"))
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn


class SqliteBackend:
    """Connections to one SQLite database file (``:memory:`` shares the writer connection for reads)."""

    dialect: Literal["sqlite"] = "sqlite"

    def __init__(self, path: str, *, readers: int) -> None:
        if path != ":memory:":
            parent = Path(path).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder {parent}: {exc}") from exc
        self.memory = path == ":memory:"
        #: held while a transaction runs on the writer connection, so close() never pulls it from under one
        self._writer_busy = threading.Lock()
        self._writer = _connect(path)
        self._writer.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KIB}")
        if not self.memory:
            with translate_errors("enabling WAL"):
                self._writer.execute("PRAGMA journal_mode = WAL")
        self.reader_count = 1 if self.memory else readers
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_readers: list[sqlite3.Connection] = []
        for _ in range(0 if self.memory else readers):
            conn = _connect(path)
            conn.execute("PRAGMA query_only = ON")
            self._readers.put(conn)
            self._all_readers.append(conn)

    def run_write(self, fn: Callable[[SqliteTx], T]) -> T:
        """Run ``fn`` in one IMMEDIATE transaction on the writer connection (caller serialises)."""
        with self._writer_busy:
            return _run(self._writer, "BEGIN IMMEDIATE", fn)

    def run_read(self, fn: Callable[[SqliteTx], T]) -> T:
        """Run ``fn`` in one read transaction (a WAL snapshot taken at its first statement)."""
        if self.memory:
            with self._writer_busy:
                return _run(self._writer, "BEGIN", fn)
        conn = self._readers.get()
        try:
            return _run(conn, "BEGIN", fn)
        finally:
            self._readers.put(conn)

    def close(self) -> None:
        """Close every connection, each once no transaction runs on it.

        A worker thread can still be inside a transaction when the store is closed (its caller was cancelled and
        stopped waiting); closing a sqlite3 connection under a running statement crashes the interpreter, so each
        connection is closed only when it is idle — a reader when it is back in the pool, the writer when its
        lock is free — and one still busy after the wait is left to the garbage collector rather than closed.
        """
        deadline = time.monotonic() + _CLOSE_WAIT_SECONDS
        for _ in self._all_readers:
            try:
                conn = self._readers.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            conn.close()
        if self._writer_busy.acquire(timeout=max(0.0, deadline - time.monotonic())):
            try:
                self._writer.close()
            finally:
                self._writer_busy.release()


def _run(conn: sqlite3.Connection, begin: str, fn: Callable[[SqliteTx], T]) -> T:
    with translate_errors("sqlite begin"):
        conn.execute(begin)
    try:
        result = fn(SqliteTx(conn))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    with translate_errors("sqlite commit"):
        conn.execute("COMMIT")
    return result
