"""``open_store(url)``: the async façade over a SQLite or PostgreSQL backend.

``write(fn)`` and ``read(fn)`` run a synchronous ``fn(tx)`` in a worker thread, in one transaction, behind a
:class:`anyio.CapacityLimiter` (one writer for SQLite; the pool size for reads and PostgreSQL writes), so
concurrency has an explicit bound.

``read(fn, short=True)`` is for reads known to be short (a point read, an index-driven page of a search): on
SQLite they run on the calling thread, on that thread's own read connection, within a bound of SQL work, and are
handed to a worker thread only when they go over it (see :mod:`bcconnect.store._sqlite`). PostgreSQL reads always
go to a worker thread (its driver blocks on the network).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import unquote, urlsplit

import anyio
import anyio.to_thread

from bcconnect.errors import ConfigError, StoreError
from bcconnect.store._migrate import (
    Migration,
    MigrationStatus,
    ScriptTx,
    applied_versions,
    apply_one,
    available_migrations,
    migration_status,
)
from bcconnect.store._postgres import PostgresBackend
from bcconnect.store._sqlite import InlineRefused, SqliteBackend
from bcconnect.store._tx import Dialect, Tx

T = TypeVar("T")


class _Backend(Protocol):
    @property
    def dialect(self) -> Dialect: ...
    @property
    def reader_count(self) -> int: ...

    def run_write(self, fn: Callable[[Any], T]) -> T: ...
    def run_read(self, fn: Callable[[Any], T]) -> T: ...
    def close(self) -> None: ...


class _InlineBackend(Protocol):
    inline_reads: bool

    def run_read_inline(self, fn: Callable[[Any], T]) -> T: ...


class Store:
    """An open store (from :func:`open_store`); pass ``fn(tx)`` callables to :meth:`write` / :meth:`read`."""

    def __init__(self, backend: _Backend) -> None:
        self._backend = backend
        self.dialect: Dialect = backend.dialect
        #: a PostgreSQL hot standby (read-only, replaying the primary's WAL): set by :func:`open_store`
        self.is_replica = False
        writers = 1 if backend.dialect == "sqlite" else max(1, backend.reader_count // 2)
        self._write_limiter = anyio.CapacityLimiter(writers)
        self._read_limiter = anyio.CapacityLimiter(backend.reader_count)
        self._inline: _InlineBackend | None = (
            cast(_InlineBackend, backend) if getattr(backend, "inline_reads", False) else None
        )
        #: short reads answered on the calling thread, and those handed to a worker after trying (observable)
        self.inline_reads = 0
        self.inline_handed_over = 0

    async def write(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn(tx)`` in one write transaction in a worker thread; commit, or roll back if it raises."""
        return await anyio.to_thread.run_sync(self._backend.run_write, fn, limiter=self._write_limiter)

    async def read(self, fn: Callable[[Tx], T], *, short: bool = False) -> T:
        """Run ``fn(tx)`` in one consistent read snapshot in a worker thread.

        ``short``: the read is a point read or an index-driven page; on SQLite it runs on this thread instead,
        and goes to a worker thread only if it turns out long or meets a lock (``fn`` may then run twice: a read
        must have no effects beyond its answer that running it again would double).
        """
        if short and self._inline is not None:
            try:
                found = self._inline.run_read_inline(fn)
            except InlineRefused:
                self.inline_handed_over += 1
            else:
                self.inline_reads += 1
                return found
        return await anyio.to_thread.run_sync(self._backend.run_read, fn, limiter=self._read_limiter)

    async def upgrade(self) -> list[int]:
        """Apply pending migrations; return the numbers applied."""
        applied: list[int] = []
        for migration in available_migrations(self.dialect):
            ran = await self.write(partial(_apply, migration))
            if ran:
                applied.append(migration.number)
        return applied

    async def read_within(self, fn: Callable[[Tx], T], *, within_seconds: float) -> T:
        """:meth:`read`, but StoreError after ``within_seconds`` (for probes and scrapes).

        The worker thread is abandoned on timeout, so a database that stopped answering cannot hang a readiness
        probe or a metrics scrape for the pool's whole connect timeout.
        """
        try:
            with anyio.fail_after(within_seconds):
                return await anyio.to_thread.run_sync(
                    self._backend.run_read, fn, limiter=self._read_limiter, abandon_on_cancel=True
                )
        except TimeoutError as exc:
            raise StoreError(f"the store did not answer within {within_seconds:g} s") from exc

    async def ping(self, *, within_seconds: float = 2.0) -> None:
        """Check the database answers a trivial read within ``within_seconds``; StoreError if not."""
        await self.read_within(_select_one, within_seconds=within_seconds)

    async def pending_migrations(self, *, within_seconds: float = 2.0) -> list[int]:
        """Numbers of the migrations this code knows that the database has not applied (read-only)."""
        applied = await self.read_within(applied_versions, within_seconds=within_seconds)
        return [m.number for m in available_migrations(self.dialect) if m.number not in applied]

    async def size_bytes(self) -> int:
        """The database's size on disk (PostgreSQL: the database; SQLite: the main file's pages)."""
        return await self.read(database_size_bytes)

    def pool_stats(self) -> PoolStats:
        """Connection use now: reads and writes in flight against their limits."""
        return PoolStats(
            reads_in_use=int(self._read_limiter.borrowed_tokens),
            reads_max=int(self._read_limiter.total_tokens),
            writes_in_use=int(self._write_limiter.borrowed_tokens),
            writes_max=int(self._write_limiter.total_tokens),
        )

    async def migration_status(self) -> list[MigrationStatus]:
        """Every known migration and when it was applied."""
        return await self.write(migration_status)

    def close(self) -> None:
        """Close the connections (``open_store`` does this on exit)."""
        self._backend.close()


@dataclass(frozen=True, slots=True)
class PoolStats:
    """How many store reads and writes run now, and how many may run at once."""

    reads_in_use: int
    reads_max: int
    writes_in_use: int
    writes_max: int


def _select_one(tx: Tx) -> None:
    tx.query_one("SELECT 1")


def _in_recovery(tx: Tx) -> bool:
    row = tx.query_one("SELECT pg_is_in_recovery()")
    return bool(row and row[0])


def database_size_bytes(tx: Tx) -> int:
    """The database's size on disk in bytes."""
    if tx.dialect == "postgresql":
        row = tx.query_one("SELECT pg_database_size(current_database())")
    else:
        row = tx.query_one("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
    return int(row[0]) if row and row[0] is not None else 0


def _apply(migration: Migration, tx: Tx) -> bool:
    return apply_one(cast(ScriptTx, tx), migration)


def _backend_for(url: str, *, pool_size: int) -> _Backend:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative/path, sqlite:////absolute/path, sqlite:///:memory:
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path) or ":memory:"
        return SqliteBackend(path, readers=pool_size)
    if parts.scheme in ("postgresql", "postgres"):
        return PostgresBackend(url, size=pool_size)
    raise ConfigError(f"expected a sqlite:///… or postgresql://… URL, got scheme {parts.scheme!r}", key="store.url")


@asynccontextmanager
async def open_store(url: str, *, migrate: bool = True, pool_size: int = 4) -> AsyncIterator[Store]:
    """Open the store at ``url`` (``sqlite:///path`` or ``postgresql://…``), apply migrations, close on exit.

    ``migrate=False`` opens without touching the schema (for ``bcconnect db status``).
    """
    backend = await anyio.to_thread.run_sync(lambda: _backend_for(url, pool_size=pool_size))
    store = Store(backend)
    try:
        if store.dialect == "postgresql":
            store.is_replica = await store.read(_in_recovery)
        if migrate and not store.is_replica:
            await store.upgrade()
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(store.close)
