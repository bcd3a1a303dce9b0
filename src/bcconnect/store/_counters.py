"""Change counters: how a process knows that facts it cached from the store are still current.

A writer that changes a family of facts calls :func:`bump_change_counter` in the same transaction; a reader
calls :func:`change_counters` in its own transaction and compares. Because the bump commits (or rolls back)
with the change, a reader's snapshot sees the change exactly when it sees the new counter, on SQLite and on
PostgreSQL, whichever process wrote it. Counters only grow, so a family's sum over its shards changes with
every committed bump.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from bcconnect.store._tx import Tx

#: rows per family: concurrent writers of one family usually bump different rows
SHARDS = 8


def bump_change_counter(tx: Tx, family: str, *, key: str = "") -> None:
    """Record, in this write transaction, that facts of ``family`` change (``key`` picks the shard)."""
    shard = zlib.crc32(key.encode("utf-8")) % SHARDS
    tx.execute(
        "INSERT INTO store_change_counters (family, shard, version) VALUES (?, ?, 1)"
        " ON CONFLICT (family, shard) DO UPDATE SET version = store_change_counters.version + 1",
        (family, shard),
    )


def change_counters(tx: Tx) -> Mapping[str, int]:
    """Every family's counter (the sum over its shards) as this transaction sees them; absent: never bumped."""
    rows = tx.query("SELECT family, SUM(version) FROM store_change_counters GROUP BY family")
    return {str(family): int(total) for family, total in rows}
