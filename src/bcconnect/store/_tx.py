"""The ``Tx`` protocol every repository function takes, and the error translation at the database boundary."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Protocol, runtime_checkable

from bcconnect.errors import ConflictError, StoreError

Dialect = Literal["sqlite", "postgresql"]


class Tx(Protocol):
    """One open database transaction. SQL uses ``?`` placeholders on every backend."""

    @property
    def dialect(self) -> Dialect:
        """``sqlite`` or ``postgresql``, for the few statements that differ."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> None:
        """Run one statement."""

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """Run one statement for each parameter row (batched by the driver)."""

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return every row."""

    def query_one(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
        """Run a query and return its first row, or None."""


@runtime_checkable
class BulkTx(Protocol):
    """A transaction that can bulk-load rows (PostgreSQL COPY); repository code falls back to executemany."""

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        """Insert ``rows`` into ``table``'s ``columns``."""

    def copy_into_stage(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
        """COPY ``rows`` into an empty session-temporary twin of ``table`` (emptied at commit); return its name."""


#: below this many rows a COPY through a staging table costs more round trips than it saves
COPY_MIN_ROWS = 32


def upsert_rows(
    tx: Tx,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    key: Sequence[str],
    update: Sequence[str],
    where: str | None = None,
) -> None:
    """``INSERT … ON CONFLICT (key) DO UPDATE SET`` each ``update`` column from the incoming row (``DO NOTHING``
    without any), only ``where`` it holds (``excluded.`` names the incoming row).

    Keys must be distinct within ``rows`` (one row per key: the statement may touch a row once). On PostgreSQL
    a batch is COPYed into a staging table and upserted by one statement; elsewhere it is one ``executemany``.
    """
    if not rows:
        return
    names = ", ".join(columns)
    if update:
        action = "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in update)
        action += f" WHERE {where}" if where else ""
    else:
        action = "NOTHING"
    conflict = f"ON CONFLICT ({', '.join(key)}) DO {action}"
    if isinstance(tx, BulkTx) and len(rows) >= COPY_MIN_ROWS:
        stage = tx.copy_into_stage(table, columns, rows)
        tx.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} {conflict}")  # noqa: S608 - fixed names
        return
    marks = ", ".join("?" * len(columns))
    tx.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks}) {conflict}", rows)  # noqa: S608 - fixed names


def update_rows(tx: Tx, table: str, key: str, column: str, rows: Sequence[tuple[object, object]]) -> None:
    """``UPDATE table SET column = value WHERE key = k`` for each ``(value, k)`` of ``rows`` (keys distinct).

    On PostgreSQL a batch is COPYed into a staging table and applied by one ``UPDATE … FROM``.
    """
    if not rows:
        return
    if isinstance(tx, BulkTx) and len(rows) >= COPY_MIN_ROWS:
        stage = tx.copy_into_stage(table, (column, key), rows)
        tx.execute(
            f"UPDATE {table} SET {column} = s.{column} FROM {stage} s WHERE {table}.{key} = s.{key}"  # noqa: S608
        )
        return
    tx.executemany(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", rows)  # noqa: S608 - fixed names


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn sqlite3 and psycopg errors into :class:`StoreError` / :class:`ConflictError` (chained)."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise ConflictError(f"{what}: {exc}") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"{what}: {exc}") from exc
    except Exception as exc:
        conflict, other = _psycopg_errors()
        if conflict is not None and isinstance(exc, conflict):
            raise ConflictError(f"{what}: {exc}") from exc
        if other is not None and isinstance(exc, other):
            raise StoreError(f"{what}: {exc}") from exc
        raise


def _psycopg_errors() -> tuple[tuple[type[BaseException], ...] | None, type[BaseException] | None]:
    try:
        import psycopg
        from psycopg import errors
    except ImportError:  # pragma: no cover - the postgres extra is not installed
        return None, None
    conflict = (errors.UniqueViolation, errors.SerializationFailure, errors.DeadlockDetected)
    return conflict, psycopg.Error
