"""What changed since a point in logical time: the feed a read model follows (the cohorts' facts).

Every write takes the next logical time ``t`` and stamps it on the resource's current row, so "the current
resources of a type changed after ``(t, id)``, in ``(t, id)`` order" is a resumable cursor: a resource written
again later moves to a later position and is met again, none is skipped. Deletions come as current rows with
``deleted`` and no body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bcconnect.store._resources import VERSION_COLUMNS, StoredResource, stored_from_row
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
