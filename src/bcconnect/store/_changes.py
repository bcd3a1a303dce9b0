"""What changed: the current rows of a type written after a cursor, in (time, id) order.

A read model kept beside the store (triage's open referrals and pathway clocks) follows the store with this
instead of re-reading everything: it keeps the last ``(t, id)`` it applied and asks for what comes after,
up to a snapshot time, a page at a time. Deleted resources come back too (``deleted``, no body), so the
read model forgets them. A reader takes its upper bound from :func:`feed_horizon` — never from the newest ``t``
it happens to see — so a version whose ``t`` was drawn before, but committed after, a later one is never
stepped over (``tests/integration/store/test_feed_out_of_order.py`` holds the store to it). The cohorts'
facts read model follows Patient, Condition and Encounter the same way (:func:`changed_since`, which also names
the adapter that wrote each row) and re-reads a person's rows by compartment (:func:`current_in_compartments`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bcconnect.store._resources import VERSION_COLUMNS, StoredResource, current_t, stored_from_row
from bcconnect.store._tx import Tx

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ChangedResource:
    """A current row (possibly a deletion) and the adapter that wrote it (None for the store's own writes)."""

    resource: StoredResource
    source: str | None


def _changed(row: Sequence[object]) -> ChangedResource:
    source = row[8]
    return ChangedResource(stored_from_row(row[:8]), str(source) if source is not None else None)


def feed_horizon(tx: Tx) -> int:
    """The watermark of the change feed: the highest ``t`` at or below which every version this snapshot will
    ever see is already visible in it. A feed reads up to here and moves its cursor no further, so a version
    committed later can only have a ``t`` above it.

    Every feed consumer (triage's and the cohorts' read models, anything that keeps a ``(t, id)`` cursor) asks
    this one function. Writers draw ``t`` under the ``store_clock`` row lock held to commit (PostgreSQL) or as
    the single writer (SQLite), so versions commit in ``t`` order and the clock this snapshot sees is safe.
    """
    return current_t(tx)


def changed_since(
    tx: Tx, resource_type: str, *, after_t: int, after_id: str, until_t: int, limit: int = 1000
) -> list[ChangedResource]:
    """Up to ``limit`` current rows of ``resource_type`` whose ``(t, id)`` is after ``(after_t, after_id)``
    and whose ``t`` is at most ``until_t``, in ``(t, id)`` order (deletions included)."""
    rows = tx.query(
        f"SELECT {VERSION_COLUMNS}, r.source FROM resources r JOIN resource_versions v ON v.vid = r.vid"  # noqa: S608
        " WHERE r.res_type = ? AND (r.t, r.res_id) > (?, ?) AND r.t <= ? ORDER BY r.t, r.res_id LIMIT ?",
        (resource_type, after_t, after_id, until_t, limit),
    )
    return [_changed(r) for r in rows]


def current_in_compartments(tx: Tx, resource_type: str, patient_ids: Sequence[str]) -> list[ChangedResource]:
    """The current, not deleted rows of ``resource_type`` in these Patients' compartments (a Patient: the
    Patients with these ids), by id."""
    out: list[ChangedResource] = []
    column = "r.res_id" if resource_type == "Patient" else "r.compartment"
    ids = sorted(set(patient_ids))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = tx.query(
            f"SELECT {VERSION_COLUMNS}, r.source FROM resources r JOIN resource_versions v ON v.vid = r.vid"  # noqa: S608
            f" WHERE r.res_type = ? AND {column} IN ({marks}) AND r.deleted = 0 ORDER BY r.res_id",
            (resource_type, *chunk),
        )
        out += [_changed(r) for r in rows]
    return out


def changed_current(
    tx: Tx, resource_type: str, *, after: tuple[int, str] = (0, ""), upto: int | None = None, limit: int = 1000
) -> list[StoredResource]:
    """Up to ``limit`` current rows of ``resource_type`` (deleted ones included) whose ``(t, id)`` comes after
    ``after`` and whose ``t`` is at most ``upto`` (no bound when None), in ``(t, id)`` order."""
    after_t, after_id = after
    sql = (
        f"SELECT {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.vid = r.vid"  # noqa: S608
        # a row-value comparison, not ``t > ? OR (t = ? AND id > ?)``: both backends take it to the (type, t, id)
        # index as one range, where PostgreSQL's generic plan for the OR read every row of the type (0.4 s a
        # call at 128k referrals, three calls before every triage answer)
        " WHERE r.res_type = ? AND (r.t, r.res_id) > (?, ?)"
    )
    params: list[object] = [resource_type, after_t, after_id]
    if upto is not None:
        sql += " AND r.t <= ?"
        params.append(upto)
    rows = tx.query(sql + " ORDER BY r.t, r.res_id LIMIT ?", [*params, limit])
    return [stored_from_row(row) for row in rows]
