"""The SQLite backend: one writer connection, a few reader connections, WAL so readers never block the writer.

Writes and long reads run in a worker thread (the store hands them to ``anyio.to_thread``); connections are
created with ``check_same_thread=False`` and each is used by one thread at a time (the writer behind a limiter of
one, the readers through a queue as large as the reader limiter).

Short reads (a point read, an index-driven page) can run *inline*, on the calling thread, through
:meth:`SqliteBackend.run_read_inline`: handing a sub-millisecond read to a worker thread and back cost more than the
read (a queue, a condition variable, a wake-up of the event loop, and the GIL handed back and forth). Each thread
that reads inline has its own read-only connection, opened on first use; in WAL mode a reader works from its own
snapshot and neither waits for the writer nor holds it up, so an inline read never meets "database is locked"
from our writer. Two bounds keep an inline read from stalling the event loop: it is interrupted after
:data:`INLINE_STEP_BUDGET` virtual-machine steps (about ten milliseconds of SQL), and it never waits for a lock
(no busy timeout). Either way :class:`InlineRefused` is raised, the result is discarded, and the caller runs the
read again in a worker thread (a read transaction has no side effects to undo).
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
#: virtual-machine steps between two checks of an inline read's budget
_INLINE_CHECK_EVERY = 10_000
#: steps an inline read may take before it is interrupted and handed to a worker thread (a point read takes a few
#: hundred, a 50-row screened page a few tens of thousands; two million is roughly ten milliseconds of SQL)
INLINE_STEP_BUDGET = 2_000_000
#: SQLite's primary result codes that send an inline read to a worker thread instead of failing it
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_INTERRUPT = 5, 6, 9


class InlineRefused(Exception):
    """An inline read went over its budget or met a lock: run it again in a worker thread."""


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


class _InlineReader:
    """One thread's read-only connection for inline reads, and the step budget of the read running on it."""

    def __init__(self, conn: sqlite3.Connection, budget: int) -> None:
        self.conn = conn
        self.budget = budget
        self.checks_left = 0
        self.over_budget = False
        #: held while a read runs on it, so close() never pulls the connection from under one
        self.busy = threading.Lock()
        conn.set_progress_handler(self._check, _INLINE_CHECK_EVERY)

    def _check(self) -> int:
        self.checks_left -= 1
        if self.checks_left < 0:
            self.over_budget = True
            return 1  # SQLite interrupts the statement
        return 0

    def start(self) -> None:
        self.checks_left = max(1, self.budget // _INLINE_CHECK_EVERY)
        self.over_budget = False

    def unbounded(self) -> None:
        """No interruption (for the rollback after an interrupted read)."""
        self.checks_left = 1 << 62


class SqliteBackend:
    """Connections to one SQLite database file (``:memory:`` shares the writer connection for reads)."""

    dialect: Literal["sqlite"] = "sqlite"
    #: steps an inline read may take (tests lower it to force the hand-over to a worker thread)
    inline_step_budget = INLINE_STEP_BUDGET

    def __init__(self, path: str, *, readers: int) -> None:
        if path != ":memory:":
            parent = Path(path).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder {parent}: {exc}") from exc
        self.memory = path == ":memory:"
        self._path = path
        #: each thread's inline read connection (see the module docstring), and every one made, for close()
        self._inline = threading.local()
        self._inline_all: list[_InlineReader] = []
        self._inline_lock = threading.Lock()
        self._closed = False
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

    @property
    def inline_reads(self) -> bool:
        """Whether :meth:`run_read_inline` can serve reads (not for ``:memory:``, whose one connection is the
        writer's)."""
        return not self.memory

    def _inline_reader(self) -> _InlineReader:
        reader: _InlineReader | None = getattr(self._inline, "reader", None)
        if reader is None:
            conn = _connect(self._path)
            # never wait for a lock on the calling thread: a busy database sends the read to a worker thread
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA query_only = ON")
            reader = _InlineReader(conn, self.inline_step_budget)
            with self._inline_lock:
                if self._closed:
                    conn.close()
                    raise InlineRefused("the store is closing")
                self._inline_all.append(reader)
            self._inline.reader = reader
        return reader

    def run_read_inline(self, fn: Callable[[SqliteTx], T]) -> T:
        """Run ``fn`` in one read transaction on this thread's own connection, within the step budget.

        Raises :class:`InlineRefused` (nothing of the attempt is kept) when the read goes over its budget or
        meets a lock; the caller then runs it with :meth:`run_read` in a worker thread.
        """
        reader = self._inline_reader()
        if not reader.busy.acquire(blocking=False):
            raise InlineRefused("this thread's inline connection is in use")  # re-entered from inside a read
        try:
            reader.budget = self.inline_step_budget
            reader.start()
            conn = reader.conn
            try:
                with translate_errors("sqlite begin"):
                    conn.execute("BEGIN")
                result = fn(SqliteTx(conn))
            except BaseException as exc:
                reader.unbounded()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if reader.over_budget or _refused(exc):
                    raise InlineRefused(str(exc)) from exc
                raise
            reader.unbounded()
            with translate_errors("sqlite commit"):
                conn.execute("COMMIT")
            if reader.over_budget:  # interrupted, and ``fn`` carried on regardless: its answer is not trusted
                raise InlineRefused("over the inline step budget")
            return result
        finally:
            reader.busy.release()

    def close(self) -> None:
        """Close every connection, each once no transaction runs on it.

        A worker thread can still be inside a transaction when the store is closed (its caller was cancelled and
        stopped waiting); closing a sqlite3 connection under a running statement crashes the interpreter, so each
        connection is closed only when it is idle — a reader when it is back in the pool, the writer when its
        lock is free — and one still busy after the wait is left to the garbage collector rather than closed.
        """
        deadline = time.monotonic() + _CLOSE_WAIT_SECONDS
        with self._inline_lock:
            self._closed = True
            inline = list(self._inline_all)
        for reader in inline:
            if reader.busy.acquire(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    reader.conn.close()
                finally:
                    reader.busy.release()
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


def _refused(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is SQLite's busy, locked or interrupted result."""
    found: BaseException | None = exc
    while found is not None:
        if isinstance(found, sqlite3.Error) and getattr(found, "sqlite_errorcode", 0) & 0xFF in (
            _SQLITE_BUSY,
            _SQLITE_LOCKED,
            _SQLITE_INTERRUPT,
        ):
            return True
        found = found.__cause__
    return False


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
