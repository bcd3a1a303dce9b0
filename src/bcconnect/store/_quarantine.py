"""Quarantine: records that could not be taken in, with their reasons, until resolved or replayed."""

from __future__ import annotations

import re
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


def _filters(adapter: str | None, include_resolved: bool, reason: str | None) -> tuple[str, list[object]]:
    sql = ""
    params: list[object] = []
    if adapter is not None:
        sql += " AND adapter = ?"
        params.append(adapter)
    if not include_resolved:
        sql += " AND resolved_at IS NULL"
    if reason:
        sql += " AND (LOWER(message) LIKE ? OR reason = ?)"
        params += [f"%{reason.lower()}%", reason]
    return sql, params


def list_quarantine(
    tx: Tx,
    *,
    adapter: str | None = None,
    include_resolved: bool = False,
    limit: int = 100,
    after_id: int = 0,
    reason: str | None = None,
) -> list[QuarantineRecord]:
    """Quarantined records by id (open ones only unless ``include_resolved``), ``limit`` at a time; ``reason``
    keeps those whose reason code is it or whose message contains it (case-insensitive)."""
    where, params = _filters(adapter, include_resolved, reason)
    sql = f"SELECT {_COLUMNS} FROM quarantine WHERE id > ?{where} ORDER BY id LIMIT ?"  # noqa: S608 - fixed text
    return [_record(r) for r in tx.query(sql, [after_id, *params, limit])]


@dataclass(frozen=True, slots=True)
class QuarantineGroup:
    """Quarantined records that share an adapter, record type, reason code and message pattern."""

    adapter: str
    record_type: str
    reason: str
    pattern: str
    count: int
    first_id: int


def quarantine_groups(
    tx: Tx, *, adapter: str | None = None, include_resolved: bool = False, reason: str | None = None
) -> list[QuarantineGroup]:
    """Open quarantine grouped by adapter, record type, reason and the message with its values masked
    (``rule mrn … value 'X1'`` and ``… value 'X2'`` are one group), largest group first."""
    where, params = _filters(adapter, include_resolved, reason)
    rows = tx.query(
        f"SELECT id, adapter, record_type, reason, message FROM quarantine WHERE 1 = 1{where} ORDER BY id",  # noqa: S608
        params,
    )
    groups: dict[tuple[str, str, str, str], list[int]] = {}
    for qid, q_adapter, record_type, code, message in rows:
        groups.setdefault((q_adapter, record_type, code, message_pattern(message)), []).append(int(qid))
    out = [QuarantineGroup(*key, len(ids), ids[0]) for key, ids in groups.items()]
    return sorted(out, key=lambda g: (-g.count, g.adapter, g.record_type, g.pattern))


def message_pattern(message: str) -> str:
    """A quarantine message with its record-specific values masked, so alike failures group together.

    >>> message_pattern("rule mrn: no value (source identifier[system=x].value, value 'A12'; target identifier)")
    'rule mrn: no value (source identifier[system=x].value, value …; target identifier)'
    >>> message_pattern("entry 17 has no resource.id")
    'entry # has no resource.id'
    """
    masked = _QUOTED.sub("…", message)
    return _NUMBER.sub("#", masked)[:160]


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"(?<![A-Za-z0-9])\d+(?![A-Za-z0-9])")


def open_quarantine_for_keys(tx: Tx, adapter: str, source_keys: Sequence[str]) -> list[int]:
    """Ids of open quarantine entries of ``adapter`` for these source keys."""
    found: list[int] = []
    keys = sorted(set(source_keys))
    for start in range(0, len(keys), 400):
        chunk = keys[start : start + 400]
        marks = ",".join("?" * len(chunk))
        rows = tx.query(
            f"SELECT id FROM quarantine WHERE adapter = ? AND resolved_at IS NULL AND source_key IN ({marks})",  # noqa: S608
            (adapter, *chunk),
        )
        found += [int(r[0]) for r in rows]
    return found


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
