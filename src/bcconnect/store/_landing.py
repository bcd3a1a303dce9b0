"""Raw landing (every record as received, for skipping unchanged records and for remapping) and cursors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bcconnect.store._resources import now_instant
from bcconnect.store._tx import Tx, upsert_rows


class RawRecordLike(Protocol):
    """What :func:`land_raw` needs of a record (``bcconnect.adapters.RawRecord`` fits)."""

    @property
    def record_type(self) -> str: ...
    @property
    def source_key(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def version(self) -> str | None: ...
    @property
    def last_updated(self) -> str | None: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def content_hash(self) -> str: ...


def land_raw(tx: Tx, source: str, records: Sequence[RawRecordLike]) -> list[bool]:
    """Keep the latest raw record per (source, source_key); return, per record, True if it was unchanged.

    Unchanged means the same content hash and deletion flag as the landed copy: the caller can skip mapping.
    """
    if not records:
        return []
    keys = [r.source_key for r in records]
    landed: dict[str, tuple[str, bool]] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for row in tx.query(
            "SELECT source_key, content_hash, deleted FROM raw_records"  # noqa: S608 - '?' marks only
            f" WHERE source = ? AND source_key IN ({marks})",
            (source, *chunk),
        ):
            landed[row[0]] = (row[1], bool(row[2]))
    now = now_instant()
    flags: list[bool] = []
    changed: dict[str, tuple[object, ...]] = {}
    for r in records:
        same = landed.get(r.source_key) == (r.content_hash, r.deleted)
        flags.append(same)
        if not same:
            landed[r.source_key] = (r.content_hash, r.deleted)
            changed[r.source_key] = (
                source,
                r.source_key,
                r.record_type,
                r.version,
                r.content_hash,
                r.payload,
                now,
                r.last_updated,
                int(r.deleted),
            )
    upsert_rows(tx, "raw_records", _RAW_COLUMNS, list(changed.values()), key=_RAW_COLUMNS[:2], update=_RAW_COLUMNS[2:])
    return flags


_RAW_COLUMNS = (
    "source", "source_key", "record_type", "version", "content_hash", "payload", "received_at", "last_updated",
    "deleted",
)  # fmt: skip


def get_cursor(tx: Tx, adapter: str) -> str | None:
    """The cursor committed for ``adapter``, or None before its first page."""
    row = tx.query_one("SELECT cursor FROM cursors WHERE adapter = ?", (adapter,))
    return str(row[0]) if row else None


def set_cursor(tx: Tx, adapter: str, cursor: str) -> None:
    """Record ``cursor`` for ``adapter`` (commit it in the same transaction as the page's records)."""
    tx.execute(
        "INSERT INTO cursors (adapter, cursor, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (adapter) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        (adapter, cursor, now_instant()),
    )


def update_cursor(tx: Tx, adapter: str, change: Callable[[str | None], str]) -> None:
    """Replace ``adapter``'s cursor with ``change(current)``, the row locked from read to commit, so workers that
    each own part of one source's cursor (a resource type each) never lose one another's progress."""
    tx.execute(
        "INSERT INTO cursors (adapter, cursor, updated_at) VALUES (?, ?, ?) ON CONFLICT (adapter) DO NOTHING",
        (adapter, "", now_instant()),
    )
    lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
    row = tx.query_one(f"SELECT cursor FROM cursors WHERE adapter = ?{lock}", (adapter,))  # noqa: S608 - fixed
    current = str(row[0]) if row and row[0] else None
    set_cursor(tx, adapter, change(current))


@dataclass(frozen=True, slots=True)
class LandedRecord:
    """A record as the raw landing keeps it (the latest delivery of its source key)."""

    record_type: str
    source_key: str
    payload: bytes
    version: str | None
    last_updated: str | None
    content_hash: str
    deleted: bool


_LANDED_COLUMNS = "record_type, source_key, payload, version, last_updated, content_hash, deleted"


def _landed(row: Sequence[Any]) -> LandedRecord:
    return LandedRecord(str(row[0]), str(row[1]), bytes(row[2]), row[3], row[4], str(row[5]), bool(row[6]))


def landed_by_key(tx: Tx, source: str, source_keys: Sequence[str]) -> dict[str, LandedRecord]:
    """What the landing holds for these source keys of ``source`` (absent keys are left out)."""
    found: dict[str, LandedRecord] = {}
    unique = sorted(set(source_keys))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = tx.query(
            f"SELECT {_LANDED_COLUMNS} FROM raw_records WHERE source = ? AND source_key IN ({marks})",  # noqa: S608
            (source, *chunk),
        )
        found.update({record.source_key: record for record in map(_landed, rows)})
    return found


def landed_records(
    tx: Tx, source: str, *, after_key: str = "", limit: int = 500, record_type: str | None = None
) -> list[LandedRecord]:
    """Landed, not deleted records of ``source`` (of one type, if given) with keys after ``after_key``, by key."""
    sql = f"SELECT {_LANDED_COLUMNS} FROM raw_records WHERE source = ? AND source_key > ? AND deleted = 0"  # noqa: S608
    params: list[object] = [source, after_key]
    if record_type is not None:
        sql += " AND record_type = ?"
        params.append(record_type)
    return [_landed(row) for row in tx.query(sql + " ORDER BY source_key LIMIT ?", [*params, limit])]


def cursor_updated_at(tx: Tx, adapter: str) -> str | None:
    """When ``adapter``'s cursor was last committed (its last successful page), or None."""
    row = tx.query_one("SELECT updated_at FROM cursors WHERE adapter = ?", (adapter,))
    return str(row[0]) if row else None
