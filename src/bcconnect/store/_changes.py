"""What changed: the current rows of a type written after a cursor, in (time, id) order.

A read model kept beside the store (triage's open referrals and pathway clocks) follows the store with this
instead of re-reading everything: it keeps the last ``(t, id)`` it applied and asks for what comes after,
up to a snapshot time, a page at a time. Deleted resources come back too (``deleted``, no body), so the
read model forgets them. Writers take ``t`` in commit order (``store_clock``), so nothing committed at or
before the snapshot time is missed.
"""

from __future__ import annotations

from bcconnect.store._resources import VERSION_COLUMNS, StoredResource, stored_from_row
from bcconnect.store._tx import Tx


def changed_current(
    tx: Tx, resource_type: str, *, after: tuple[int, str] = (0, ""), upto: int | None = None, limit: int = 1000
) -> list[StoredResource]:
    """Up to ``limit`` current rows of ``resource_type`` (deleted ones included) whose ``(t, id)`` comes after
    ``after`` and whose ``t`` is at most ``upto`` (no bound when None), in ``(t, id)`` order."""
    after_t, after_id = after
    sql = (
        f"SELECT {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.vid = r.vid"  # noqa: S608
        " WHERE r.res_type = ? AND (r.t > ? OR (r.t = ? AND r.res_id > ?))"
    )
    params: list[object] = [resource_type, after_t, after_t, after_id]
    if upto is not None:
        sql += " AND r.t <= ?"
        params.append(upto)
    rows = tx.query(sql + " ORDER BY r.t, r.res_id LIMIT ?", [*params, limit])
    return [stored_from_row(row) for row in rows]
