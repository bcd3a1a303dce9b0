# ruff: noqa: S608 - SQL assembled from fixed fragments and "?" marks; every value is a parameter
"""Export of the store's current resources as NDJSON, one file per resource type, in a canonical form (sorted
keys, id order) so two exports of the same data compare byte for byte."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import orjson

from bcconnect.search import token_hash
from bcconnect.store._listing import iter_current, resource_types
from bcconnect.store._resources import VERSION_COLUMNS, StoredResource, stored_from_row
from bcconnect.store._store import Store
from bcconnect.store._tx import Tx
from bcconnect.store._visibility import Visibility


def canonical_line(body: bytes, *, with_store_meta: bool) -> bytes:
    """One NDJSON line: sorted keys; without the store's own versionId/lastUpdated unless asked for.

    >>> canonical_line(b'{"id":"1","resourceType":"Patient","meta":{"versionId":"2","lastUpdated":"x"}}',
    ...                with_store_meta=False)
    b'{"id":"1","resourceType":"Patient"}'
    """
    resource = orjson.loads(body)
    meta = resource.get("meta")
    if not with_store_meta and isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        if meta:
            resource["meta"] = meta
        else:
            del resource["meta"]
    return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)


async def export_ndjson(store: Store, out: Path, *, with_store_meta: bool = False) -> dict[str, int]:
    """Write ``<Type>.ndjson`` per resource type (resources in id order); returns counts per type."""
    await anyio.Path(out).mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for resource_type in await store.read(resource_types):
        after = ""
        async with await anyio.open_file(out / f"{resource_type}.ndjson", "wb") as handle:
            while True:
                batch = await store.read(partial(iter_current, resource_type=resource_type, after_id=after))
                if not batch:
                    break
                lines = [
                    canonical_line(stored.body, with_store_meta=with_store_meta)
                    for stored in batch
                    if stored.body is not None
                ]
                await handle.write(b"".join(line + b"\n" for line in lines))
                counts[resource_type] = counts.get(resource_type, 0) + len(lines)
                after = batch[-1].id
    return counts


# --- Bulk Data export reads ------------------------------------------------------------------------------------
# The SQL below is assembled from fixed fragments and "?" marks; every value is a parameter (hence S608 off).

#: ids per ``IN (…)`` list (well under every backend's parameter limit)
_EXPORT_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One version an export may write (``vid``: its version key, which the sensitivity sets are keyed by)."""

    vid: int
    resource: StoredResource


def export_rows_by_id(tx: Tx, resource_type: str, ids: Sequence[str], at: int) -> list[ExportRow]:
    """The versions of these resources live at logical time ``at`` (those that existed then and were not deleted)."""
    out: list[ExportRow] = []
    for start in range(0, len(ids), _EXPORT_CHUNK):
        chunk = list(ids[start : start + _EXPORT_CHUNK])
        rows = tx.query(
            f"SELECT v.vid, {VERSION_COLUMNS} FROM resource_versions v WHERE v.res_type = ?"
            f" AND v.res_id IN ({','.join('?' * len(chunk))})"
            " AND v.t <= ? AND (v.t_end IS NULL OR v.t_end > ?) AND v.deleted = 0",
            [resource_type, *chunk, at, at],
        )
        out += [ExportRow(int(r[0]), stored_from_row(r[1:])) for r in rows]
    return out


def export_rows(
    tx: Tx, resource_type: str, *, at: int, after_id: str = "", limit: int = 5000
) -> tuple[list[ExportRow], str | None]:
    """Up to ``limit`` resources of a type as they were at logical time ``at``, in id order after ``after_id``;
    and the id to continue after (None: the type is done).

    The page walks ``resources``' primary key ``(res_type, res_id)`` as an index range (no sort of the type, so
    every page costs what the first costs). A resource written since ``at`` is read again as it was then (or
    left out when it did not exist, or was deleted); only those few rows take a second query.
    """
    rows = tx.query(
        f"SELECT r.res_id, r.t, r.deleted, v.vid, {VERSION_COLUMNS} FROM resources r"
        " JOIN resource_versions v ON v.vid = r.vid WHERE r.res_type = ? AND r.res_id > ?"
        " ORDER BY r.res_id LIMIT ?",
        [resource_type, after_id, limit],
    )
    out: list[ExportRow] = []
    changed: list[str] = []
    for row in rows:
        if int(row[1]) > at:
            changed.append(str(row[0]))
        elif not row[2]:
            out.append(ExportRow(int(row[3]), stored_from_row(row[4:])))
    if changed:
        out += export_rows_by_id(tx, resource_type, changed, at)
        out.sort(key=lambda r: r.resource.id)
    last = str(rows[-1][0]) if len(rows) == limit else None
    return out, last


def export_owned_rows(tx: Tx, resource_type: str, owners: Sequence[str], *, at: int) -> list[ExportRow]:
    """The resources of a type at logical time ``at`` that belong to (have as ``compartment``) and are in the
    patient compartment of one of ``owners`` (source Patient ids), in version order.

    Read through ``patient_compartment``'s ``(patient_id, res_type, vid)`` index: a Group export reads its
    members' rows and nothing else. A resource in several owners' compartments comes once.
    """
    out: dict[int, ExportRow] = {}
    for start in range(0, len(owners), _EXPORT_CHUNK):
        chunk = list(owners[start : start + _EXPORT_CHUNK])
        marks = ",".join("?" * len(chunk))
        rows = tx.query(
            f"SELECT v.vid, {VERSION_COLUMNS} FROM patient_compartment pc JOIN resource_versions v ON v.vid = pc.vid"
            f" WHERE pc.patient_id IN ({marks}) AND pc.res_type = ?"
            " AND v.t <= ? AND (v.t_end IS NULL OR v.t_end > ?) AND v.deleted = 0"
            f" AND v.compartment IN ({marks})",
            [*chunk, resource_type, at, at, *chunk],
        )
        for r in rows:
            out.setdefault(int(r[0]), ExportRow(int(r[0]), stored_from_row(r[1:])))
    return [out[vid] for vid in sorted(out)]


@dataclass(frozen=True, slots=True)
class SensitiveRows:
    """The rows of one resource type a grant without the sensitive scope may not see, decided as
    :meth:`Visibility.rows` decides them (hidden security labels, and clinical context), but set-based: found
    once per type from the indexes (``idx_token`` by label hash, ``idx_reference`` by target) rather than
    checked by correlated sub-queries row by row. Sized by what is sensitive, not by what is exported."""

    #: versions carrying a hidden label, or pointing in context at a labelled resource or sensitive encounter
    vids: frozenset[int]
    #: Encounters with a current labelled resource recorded in them (sensitive themselves)
    encounters: frozenset[str]

    def hides(self, row: ExportRow) -> bool:
        """Whether the row is withheld for sensitivity."""
        return row.vid in self.vids or (
            row.resource.resource_type == "Encounter" and row.resource.id in self.encounters
        )


def _label_hashes(types: Sequence[str], labels: Sequence[str]) -> list[int]:
    pairs = [label.rsplit("|", 1) for label in labels]
    return [token_hash(t, "_security", system, code) for t in types for system, code in pairs]


def _labelled_vids(tx: Tx, types: Sequence[str], labels: Sequence[str], *, current_only: bool) -> list[tuple[Any, ...]]:
    """``(vid, res_type, res_id)`` of versions carrying one of ``labels`` (``system|code``) in ``_security``.

    Found by the token hash index; the label itself is checked again as :meth:`Visibility.rows` checks it.
    """
    hashes = _label_hashes(types, labels)
    label_marks = ",".join("?" * len(labels))
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(hashes), _EXPORT_CHUNK):
        chunk = hashes[start : start + _EXPORT_CHUNK]
        if current_only:
            sql = (
                "SELECT ct.vid, ct.res_type, ct.res_id FROM idx_token sl JOIN resources ct ON ct.vid = sl.vid"
                f" WHERE sl.hash_sys_value IN ({','.join('?' * len(chunk))}) AND sl.param = '_security'"
                f" AND sl.system || '|' || sl.code IN ({label_marks})"
            )
        else:
            sql = (
                "SELECT sl.vid, sl.res_type, '' FROM idx_token sl"
                f" WHERE sl.hash_sys_value IN ({','.join('?' * len(chunk))}) AND sl.param = '_security'"
                f" AND sl.system || '|' || sl.code IN ({label_marks})"
            )
        out += tx.query(sql, [*chunk, *labels])
    return out


def _stored_types(tx: Tx) -> list[str]:
    """Every resource type in ``resources`` (deleted ones too), by seeks along its primary key rather than a scan
    of every row (a loose index scan: the next type after each one)."""
    rows = tx.query(
        "WITH RECURSIVE seen(res_type) AS (SELECT MIN(res_type) FROM resources"
        " UNION ALL SELECT (SELECT MIN(r.res_type) FROM resources r WHERE r.res_type > seen.res_type)"
        " FROM seen WHERE seen.res_type IS NOT NULL) SELECT res_type FROM seen WHERE res_type IS NOT NULL"
    )
    return [str(r[0]) for r in rows]


def sensitive_rows(tx: Tx, resource_type: str, visibility: Visibility) -> SensitiveRows:
    """The rows of ``resource_type`` that ``visibility``'s sensitivity rules withhold (see :class:`SensitiveRows`).

    Equal, row for row, to the label and context conditions of :meth:`Visibility.rows` (a test compares the two
    on every resource of a world with sensitive records); empty when the grant sees sensitive records.
    """
    labels = sorted(visibility.hidden_labels)
    if not labels:
        return SensitiveRows(frozenset(), frozenset())
    hidden = {int(r[0]) for r in _labelled_vids(tx, [resource_type], labels, current_only=False)}
    if not visibility.context_params:
        return SensitiveRows(frozenset(hidden), frozenset())
    types = _stored_types(tx)
    current = _labelled_vids(tx, types, labels, current_only=True)
    # targets whose referrers (in context) are withheld: labelled current resources …
    targets: set[tuple[str, str]] = set()
    current_vids: list[int] = []
    for vid, rtype, rid in current:
        current_vids.append(int(vid))
        targets.add((str(rtype), str(rid)))
    # … and encounters a current labelled resource was recorded in
    encounters: set[str] = set()
    for start in range(0, len(current_vids), _EXPORT_CHUNK):
        vids = current_vids[start : start + _EXPORT_CHUNK]
        rows = tx.query(
            "SELECT DISTINCT er.target_id FROM idx_reference er"
            f" WHERE er.vid IN ({','.join('?' * len(vids))}) AND er.target_type = 'Encounter'"
            " AND er.param = 'encounter' AND er.target_id IS NOT NULL",
            vids,
        )
        encounters.update(str(r[0]) for r in rows)
    # a target counts only while it exists (current, not deleted), as the screen's join on resources says
    live: set[tuple[str, str]] = set()
    by_type: dict[str, list[str]] = {}
    for rtype, rid in targets | {("Encounter", e) for e in encounters}:
        by_type.setdefault(rtype, []).append(rid)
    for rtype, ids in by_type.items():
        for start in range(0, len(ids), _EXPORT_CHUNK):
            chunk = ids[start : start + _EXPORT_CHUNK]
            rows = tx.query(
                f"SELECT res_id FROM resources WHERE res_type = ? AND res_id IN ({','.join('?' * len(chunk))})"
                " AND deleted = 0",
                [rtype, *chunk],
            )
            live.update((rtype, str(r[0])) for r in rows)
    context = sorted(visibility.context_params)
    by_type = {}
    for rtype, rid in live:
        by_type.setdefault(rtype, []).append(rid)
    for rtype, ids in by_type.items():
        for start in range(0, len(ids), _EXPORT_CHUNK):
            chunk = ids[start : start + _EXPORT_CHUNK]
            rows = tx.query(
                f"SELECT cr.vid FROM idx_reference cr WHERE cr.target_id IN ({','.join('?' * len(chunk))})"
                f" AND cr.target_type = ? AND cr.res_type = ? AND cr.param IN ({','.join('?' * len(context))})",
                [*chunk, rtype, resource_type, *context],
            )
            hidden.update(int(r[0]) for r in rows)
    return SensitiveRows(frozenset(hidden), frozenset(encounters))
