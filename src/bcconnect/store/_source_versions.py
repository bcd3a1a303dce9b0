"""Which version of its source record a current resource was mapped from (for the view's Provenance)."""

# ruff: noqa: S608 - SQL assembled from fixed fragments; every value is a '?' parameter

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bcconnect.store._tx import Tx

_CHUNK = 500


def source_record_versions(tx: Tx, items: Mapping[tuple[str, str], str]) -> dict[tuple[str, str], tuple[int, str]]:
    """``(type, id) → (current version, the source record's version)`` for resources whose source record (its
    key at the trust given in ``items``) is in the raw landing with a version the trust gave it.

    The landing keeps each record's latest delivery, which is what the resource's current version was mapped
    from (an unchanged delivery writes no new version but maps to the same content); earlier versions of the
    resource have no landed source version, and the caller compares the current version with its own.
    """
    heads: dict[str, list[tuple[str, str, int]]] = {}  # adapter → (type, id, version)
    by_type: dict[str, list[str]] = {}
    for rtype, rid in items:
        by_type.setdefault(rtype, []).append(rid)
    for rtype, ids in by_type.items():
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            rows = tx.query(
                f"SELECT res_id, version, source FROM resources WHERE res_type = ? AND res_id IN ({_marks(chunk)})"
                " AND deleted = 0",
                (rtype, *chunk),
            )
            for rid, version, source in rows:
                if source:
                    heads.setdefault(str(source), []).append((rtype, str(rid), int(version)))
    out: dict[tuple[str, str], tuple[int, str]] = {}
    for source, found in heads.items():
        keys = sorted({items[(rtype, rid)] for rtype, rid, _ in found})
        landed: dict[str, str] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            rows = tx.query(
                "SELECT source_key, version FROM raw_records WHERE source = ?"
                f" AND source_key IN ({_marks(chunk)}) AND version IS NOT NULL",
                (source, *chunk),
            )
            landed.update((str(key), str(version)) for key, version in rows if version)
        for rtype, rid, version in found:
            key = items[(rtype, rid)]
            if key in landed:
                out[(rtype, rid)] = (version, landed[key])
    return out


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))
