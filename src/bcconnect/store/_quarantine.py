"""Quarantine: records that could not be taken in, with their reasons, until resolved or replayed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from bcconnect.errors import ReasonCode
from bcconnect.store._resources import now_instant
from bcconnect.store._tx import Tx


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A record to quarantine: where it came from, the stage and reason it failed, and its payload."""

    adapter: str
    source_key: str
    record_type: str
    stage: str
    reason: ReasonCode
    message: str
    payload: bytes
    details: tuple[str, ...] = ()
    mapping_id: str | None = None
    mapping_version: str | None = None


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """A quarantined record as stored."""

    id: int
    entry: QuarantineEntry
    created_at: str
    resolved_at: str | None
    replay_count: int


_COLUMNS = (
    "id, adapter, source_key, record_type, stage, reason, message, details, mapping_id, mapping_version,"
    " payload, created_at, resolved_at, replay_count"
)


def _record(row: Sequence[Any]) -> QuarantineRecord:
    entry = QuarantineEntry(
        adapter=row[1],
        source_key=row[2],
        record_type=row[3],
        stage=row[4],
        reason=ReasonCode(row[5]),
        message=row[6],
        details=tuple(orjson.loads(row[7])),
        mapping_id=row[8],
        mapping_version=row[9],
        payload=bytes(row[10]),
    )
    return QuarantineRecord(int(row[0]), entry, row[11], row[12], int(row[13]))


def add_quarantine(tx: Tx, entry: QuarantineEntry) -> int:
    """Quarantine one record; return its id."""
    row = tx.query_one(
        "INSERT INTO quarantine (adapter, source_key, record_type, stage, reason, message, details,"
        " mapping_id, mapping_version, payload, created_at, replay_count)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"
        " RETURNING id",
        (
            entry.adapter,
            entry.source_key,
            entry.record_type,
            entry.stage,
            entry.reason.value,
            entry.message,
            orjson.dumps(list(entry.details)).decode(),
            entry.mapping_id,
            entry.mapping_version,
            entry.payload,
            now_instant(),
        ),
    )
    assert row is not None  # RETURNING always yields the row
    return int(row[0])


def list_quarantine(
    tx: Tx, *, adapter: str | None = None, include_resolved: bool = False, limit: int = 100, after_id: int = 0
) -> list[QuarantineRecord]:
    """Quarantined records by id (open ones only unless ``include_resolved``), ``limit`` at a time."""
    sql = f"SELECT {_COLUMNS} FROM quarantine WHERE id > ?"  # noqa: S608 - fixed column list
    params: list[object] = [after_id]
    if adapter is not None:
        sql += " AND adapter = ?"
        params.append(adapter)
    if not include_resolved:
        sql += " AND resolved_at IS NULL"
    sql += " ORDER BY id LIMIT ?"
    params.append(limit)
    return [_record(r) for r in tx.query(sql, params)]


def get_quarantine(tx: Tx, quarantine_id: int) -> QuarantineRecord | None:
    """One quarantined record, or None."""
    row = tx.query_one(f"SELECT {_COLUMNS} FROM quarantine WHERE id = ?", (quarantine_id,))  # noqa: S608
    return _record(row) if row else None


def resolve_quarantine(tx: Tx, quarantine_id: int) -> bool:
    """Mark a record resolved (e.g. its replay succeeded); False if there is no open record with that id."""
    found = tx.query_one(
        "UPDATE quarantine SET resolved_at = ? WHERE id = ? AND resolved_at IS NULL RETURNING id",
        (now_instant(), quarantine_id),
    )
    return found is not None


def mark_replayed(tx: Tx, quarantine_id: int) -> int | None:
    """Count one more replay attempt; return the new count, or None if there is no such record."""
    row = tx.query_one(
        "UPDATE quarantine SET replay_count = replay_count + 1 WHERE id = ? RETURNING replay_count",
        (quarantine_id,),
    )
    return int(row[0]) if row else None


def count_open_quarantine(tx: Tx, adapter: str) -> int:
    """How many records of ``adapter`` wait in quarantine (the depth ``bcconnect status`` shows)."""
    row = tx.query_one("SELECT COUNT(*) FROM quarantine WHERE adapter = ? AND resolved_at IS NULL", (adapter,))
    return int(row[0]) if row else 0
