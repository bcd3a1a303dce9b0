"""Schema migrations: numbered SQL files in ``bcconnect/store/migrations`` applied in order.

``NNNN_name.sql`` is the one text for both dialects: written for PostgreSQL and rendered for SQLite by
:func:`~bcconnect.store._dialect.render_for_sqlite`. ``NNNN_name.sqlite.sql`` / ``NNNN_name.postgresql.sql`` are
a pair kept only where the dialects truly differ (each says why on a ``-- two texts:`` line; a test fails a pair
that could be one text); a variant wins over the common file of the same number. Applied numbers are recorded in
``schema_migrations``; each file runs in its own transaction together with its record. Number blocks:
0001–0099 store, 0100–0199 identity, 0200–0299 security/audit, 0300–0399 ingest state, 0400– triage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Protocol

from bcconnect.errors import StoreError
from bcconnect.store._dialect import render_for_sqlite
from bcconnect.store._tx import Dialect, Tx

_NAME = re.compile(r"^(?P<number>\d{4})_(?P<name>[a-z0-9_]+?)(?:\.(?P<dialect>sqlite|postgresql))?\.sql$")
#: a constant key for PostgreSQL's advisory lock, so concurrent processes migrate one at a time
_PG_LOCK_KEY = 7_101_842_001


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file chosen for a dialect."""

    number: int
    name: str
    filename: str
    sql: str


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """One migration and when it was applied (None: pending)."""

    number: int
    name: str
    applied_at: str | None


class ScriptTx(Tx, Protocol):
    """A transaction that can also run a multi-statement script."""

    def executescript(self, script: str) -> None:
        """Run several statements."""


def available_migrations(dialect: Dialect, folder: Traversable | None = None) -> list[Migration]:
    """Every migration for ``dialect`` (from the package's ``migrations`` folder unless ``folder``), in order."""
    folder = folder or resources.files("bcconnect.store").joinpath("migrations")
    chosen: dict[int, tuple[bool, Migration]] = {}
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if not match or (match["dialect"] and match["dialect"] != dialect):
            continue
        number, specific = int(match["number"]), match["dialect"] is not None
        sql = entry.read_text(encoding="utf-8")
        if dialect == "sqlite" and not specific:
            sql = render_for_sqlite(sql, source=entry.name)
        migration = Migration(number, match["name"], entry.name, sql)
        previous = chosen.get(number)
        if previous and previous[0] == specific:
            raise StoreError(f"two migrations numbered {number:04d}: {previous[1].filename}, {entry.name}")
        if not previous or specific:
            chosen[number] = (specific, migration)
    return [m for _, (_, m) in sorted(chosen.items())]


def _ensure_table(tx: Tx) -> None:
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )


def _applied(tx: Tx) -> dict[int, str]:
    return {int(r[0]): str(r[1]) for r in tx.query("SELECT version, applied_at FROM schema_migrations")}


def applied_versions(tx: Tx) -> set[int]:
    """The migration numbers this database has applied (none when it was never migrated)."""
    if tx.dialect == "postgresql":
        exists = tx.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL")
    else:
        exists = tx.query_one("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    if not exists or not exists[0]:
        return set()
    return set(_applied(tx))


def apply_one(tx: ScriptTx, migration: Migration) -> bool:
    """Apply ``migration`` in this transaction unless already applied; True when it ran."""
    if tx.dialect == "postgresql":
        tx.execute("SELECT pg_advisory_xact_lock(?)", (_PG_LOCK_KEY,))
    _ensure_table(tx)
    if migration.number in _applied(tx):
        return False
    tx.executescript(migration.sql)
    tx.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        (migration.number, migration.name, datetime.now(UTC).isoformat(timespec="seconds")),
    )
    return True


def migration_status(tx: Tx) -> list[MigrationStatus]:
    """Every known migration with its applied time (pending ones have None)."""
    _ensure_table(tx)
    applied = _applied(tx)
    return [MigrationStatus(m.number, m.name, applied.get(m.number)) for m in available_migrations(tx.dialect)]
