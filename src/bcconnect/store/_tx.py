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
