"""The PostgreSQL backend: psycopg 3 (sync) over a psycopg_pool pool, run in worker threads.

Writes run in READ COMMITTED (every writer first takes the ``store_clock`` row lock, so writers are
serialised and logical time follows commit order); reads run in REPEATABLE READ, READ ONLY, so a request sees
one snapshot. ``?`` placeholders are rewritten to psycopg's ``%s`` once per statement text.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, Literal, TypeVar

from bcconnect.errors import StoreError
from bcconnect.store._tx import translate_errors

T = TypeVar("T")

#: the staging tables each pooled connection has made (see :meth:`PostgresTx.copy_into_stage`)
_STAGES: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


@lru_cache(maxsize=4096)
def _pg_sql(sql: str) -> str:
    # our SQL never has '?' or '%' inside literals; '%' must be doubled for psycopg's parameter syntax
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresTx:
    """A :class:`~bcconnect.store.Tx` over one psycopg connection inside a transaction."""

    dialect: Literal["postgresql"] = "postgresql"

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        #: staging tables this transaction has filled (emptied before they are filled again)
        self._staged: set[str] = set()

    def execute(self, sql: str, params: Sequence[object] = ()) -> None:
        """Run one statement."""
        with translate_errors("postgresql"):
            self._conn.execute(_pg_sql(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """Run one statement per row (pipelined by psycopg)."""
        with translate_errors("postgresql"), self._conn.cursor() as cur:
            cur.executemany(_pg_sql(sql), list(rows))

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Every row of a query."""
        with translate_errors("postgresql"):
            rows: list[tuple[Any, ...]] = self._conn.execute(_pg_sql(sql), params).fetchall()
            return rows

    def query_one(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        with translate_errors("postgresql"):
            row: tuple[Any, ...] | None = self._conn.execute(_pg_sql(sql), params).fetchone()
            return row

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        """Bulk-insert with COPY (index rows: several times faster than INSERT for thousands of rows)."""
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with translate_errors("postgresql copy"), self._conn.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    def copy_into_stage(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
        """COPY into ``stage_<table>``: a temporary table of ``table``'s columns (no constraints) that lives as
        long as the connection and is emptied at commit, made once per connection (and again after a rollback
        took it away)."""
        stage = f"stage_{table}"
        made = _STAGES.setdefault(self._conn, set())
        with translate_errors("postgresql stage"):
            if stage in self._staged:
                self._conn.execute(f"TRUNCATE {stage}")  # a second batch in one transaction starts empty
            elif stage not in made:
                self._conn.execute(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS"  # noqa: S608 - fixed names
                    f" AS SELECT * FROM {table} WITH NO DATA"
                )
                made.add(stage)
        self._staged.add(stage)
        self.copy_rows(stage, columns, rows)
        return stage

    def executescript(self, script: str) -> None:
        """Run a migration script (several statements, no parameters)."""
        with translate_errors("postgresql migration"):
            self._conn.execute(script.encode())


class PostgresBackend:
    """Two connection pools to one PostgreSQL database: readers (REPEATABLE READ, READ ONLY) and writers.

    Reader connections carry their isolation level and read-only flag, so psycopg opens each read with one
    ``BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`` (no extra round trip per read), and use generic
    plans for the prepared statements psycopg creates for repeated queries.
    """

    dialect: Literal["postgresql"] = "postgresql"

    def __init__(self, url: str, *, size: int) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:  # pragma: no cover - the postgres extra is not installed
            raise StoreError("PostgreSQL needs the 'postgres' extra (psycopg, psycopg_pool)") from exc

        def reader(conn: Any) -> None:
            # every search query is driven by an index lookup, so a generic plan is as good as a custom one;
            # re-planning each execution (PostgreSQL's default for the first runs) doubled search latency
            conn.execute("SET plan_cache_mode = force_generic_plan")
            conn.commit()
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True

        self.reader_count = size
        with translate_errors("connecting to PostgreSQL"):
            self._readers = ConnectionPool(url, min_size=1, max_size=size, open=True, timeout=30, configure=reader)
            self._writers = ConnectionPool(url, min_size=1, max_size=max(1, size // 2), open=True, timeout=30)
            self._readers.wait(timeout=30)
            self._writers.wait(timeout=30)

    def run_write(self, fn: Callable[[PostgresTx], T]) -> T:
        """Run ``fn`` in one READ COMMITTED transaction."""
        with translate_errors("postgresql"), self._writers.connection() as conn:
            try:
                with conn.transaction():
                    return fn(PostgresTx(conn))
            except BaseException:
                _STAGES.pop(conn, None)  # staging tables made in the rolled-back transaction are gone with it
                raise

    def run_read(self, fn: Callable[[PostgresTx], T]) -> T:
        """Run ``fn`` in one REPEATABLE READ, READ ONLY transaction."""
        with translate_errors("postgresql"), self._readers.connection() as conn, conn.transaction():
            return fn(PostgresTx(conn))

    def close(self) -> None:
        """Close both pools."""
        self._readers.close()
        self._writers.close()
