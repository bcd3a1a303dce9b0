"""Walking every current resource of a type in id order (export, reconciliation sweeps)."""

from __future__ import annotations

from bcconnect.store._resources import VERSION_COLUMNS, StoredResource, stored_from_row
from bcconnect.store._tx import Tx


def resource_types(tx: Tx) -> list[str]:
    """Every resource type with at least one current (not deleted) resource, sorted."""
    return [str(r[0]) for r in tx.query("SELECT DISTINCT res_type FROM resources WHERE deleted = 0 ORDER BY 1")]


def iter_current(
    tx: Tx, resource_type: str, *, after_id: str = "", limit: int = 1000, source: str | None = None
) -> list[StoredResource]:
    """Up to ``limit`` current, not deleted resources of ``resource_type`` with ids after ``after_id``, by id
    (only those written by adapter ``source``, when given)."""
    sql = (
        f"SELECT {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.vid = r.vid"  # noqa: S608
        " WHERE r.res_type = ? AND r.res_id > ? AND r.deleted = 0"
    )
    params: list[object] = [resource_type, after_id]
    if source is not None:
        sql += " AND r.source = ?"
        params.append(source)
    rows = tx.query(sql + " ORDER BY r.res_id LIMIT ?", [*params, limit])
    return [stored_from_row(row) for row in rows]
