"""Held resources: clinical resources whose Patient is missing or quarantined wait here, never served.

The view must never serve a reference to a Patient that does not exist, so ingest keeps such resources back
(kept, counted, listed by ``bcconnect quarantine held``) and releases them into the store in the transaction
that writes their Patient — from a later page, a quarantine replay or a ``remap``. The table
(``held_resources``) belongs to ingest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from bcconnect.store import Tx

_CHUNK = 400


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class HeldResource:
    """One resource waiting for its Patient."""

    resource_type: str
    id: str
    adapter: str
    source_key: str
    patient_id: str
    held_at: str
    body: dict[str, Any]


def hold(tx: Tx, rows: Iterable[tuple[dict[str, Any], str, str, str]]) -> int:
    """Keep these ``(resource, adapter, source_key, patient_id)`` back; a newer mapping replaces an older one."""
    values = [
        (r["resourceType"], r["id"], adapter, key, patient, orjson.dumps(r).decode(), _now())
        for r, adapter, key, patient in rows
    ]
    tx.executemany(
        "INSERT INTO held_resources (res_type, res_id, adapter, source_key, patient_id, body, held_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (res_type, res_id) DO UPDATE SET adapter = excluded.adapter,"
        " source_key = excluded.source_key, patient_id = excluded.patient_id, body = excluded.body",
        values,
    )
    return len(values)


def take_held(tx: Tx, patient_ids: Sequence[str]) -> list[HeldResource]:
    """Remove and return everything held for these Patients (the caller writes it to the store)."""
    taken: list[HeldResource] = []
    unique = sorted(set(patient_ids))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = tx.query(
            "SELECT res_type, res_id, adapter, source_key, patient_id, held_at, body FROM held_resources"  # noqa: S608
            f" WHERE patient_id IN ({marks}) ORDER BY res_type, res_id",
            chunk,
        )
        if rows:
            tx.execute(f"DELETE FROM held_resources WHERE patient_id IN ({marks})", chunk)  # noqa: S608
        taken += [HeldResource(r[0], r[1], r[2], r[3], r[4], r[5], orjson.loads(r[6])) for r in rows]
    return taken


def drop_held(tx: Tx, resource_type: str, resource_id: str) -> bool:
    """Forget a held resource (its source record was deleted); True when one was held."""
    row = tx.query_one(
        "DELETE FROM held_resources WHERE res_type = ? AND res_id = ? RETURNING res_id", (resource_type, resource_id)
    )
    return row is not None


def count_held(tx: Tx, adapter: str | None = None) -> int:
    """How many resources wait for their Patient (of one adapter, or all)."""
    if adapter is None:
        row = tx.query_one("SELECT COUNT(*) FROM held_resources")
    else:
        row = tx.query_one("SELECT COUNT(*) FROM held_resources WHERE adapter = ?", (adapter,))
    return int(row[0]) if row else 0


def list_held(tx: Tx, *, adapter: str | None = None, limit: int = 100) -> list[HeldResource]:
    """Held resources, oldest first."""
    sql = "SELECT res_type, res_id, adapter, source_key, patient_id, held_at, body FROM held_resources"
    params: list[object] = []
    if adapter is not None:
        sql += " WHERE adapter = ?"
        params.append(adapter)
    sql += " ORDER BY held_at, res_type, res_id LIMIT ?"
    params.append(limit)
    return [HeldResource(r[0], r[1], r[2], r[3], r[4], r[5], orjson.loads(r[6])) for r in tx.query(sql, params)]


def held_by_type(tx: Tx, adapter: str | None = None) -> dict[str, int]:
    """Counts of held resources per resource type."""
    sql = "SELECT res_type, COUNT(*) FROM held_resources"
    params: list[object] = []
    if adapter is not None:
        sql += " WHERE adapter = ?"
        params.append(adapter)
    sql += " GROUP BY res_type ORDER BY res_type"
    return {str(r[0]): int(r[1]) for r in tx.query(sql, params)}
