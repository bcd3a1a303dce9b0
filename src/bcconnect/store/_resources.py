"""Resource writes and reads: versions, the current row, and the search index rows of each version.

Every write transaction that changes something takes the next logical time ``t`` (and a block of version
keys) from ``store_clock``; the superseded version gets ``t_end = t``. Index and compartment rows belong to a
version (``vid``), so a search can be re-run against any earlier ``t`` (snapshot-consistent paging).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from bcconnect.errors import StoreError
from bcconnect.search import IndexRows, date_range, extract_index
from bcconnect.store._tx import BulkTx, Tx, update_rows, upsert_rows
from bcconnect.store._visibility import Visibility

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ResourceWrite:
    """One resource to store.

    ``body`` is the FHIR JSON as mapped; the store sets ``meta.versionId`` and ``meta.lastUpdated`` in what
    it serves. ``source`` is the adapter name; ``compartment`` is the id of the source Patient the resource
    belongs to (the Patient's own id for a Patient; None for Organization, Practitioner, Location …).
    """

    resource_type: str
    id: str
    body: bytes
    source: str
    compartment: str | None = None
    #: ``body`` already parsed, when the caller has it (ingest does): saves parsing it again; never changed.
    #: With it, ``body`` may be empty (``b""``): the store reads only the parsed form
    parsed: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class WriteCounts:
    """What :func:`put_resources` did: new resources, new versions of changed ones, unchanged (skipped)."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0

    def __add__(self, other: WriteCounts) -> WriteCounts:
        return WriteCounts(self.new + other.new, self.changed + other.changed, self.unchanged + other.unchanged)


@dataclass(frozen=True, slots=True)
class StoredResource:
    """One stored version: ``body`` is the JSON served (None for a deletion)."""

    resource_type: str
    id: str
    version: int
    last_updated: str
    deleted: bool
    body: bytes | None
    t: int
    #: the source Patient id the resource belongs to (None for shared resources)
    compartment: str | None = None

    @property
    def version_id(self) -> str:
        """``meta.versionId`` as served."""
        return str(self.version)


VERSION_COLUMNS = "v.res_type, v.res_id, v.version, v.last_updated, v.deleted, v.body, v.t, v.compartment"


def stored_from_row(row: Sequence[Any]) -> StoredResource:
    """Build a :class:`StoredResource` from a row selected with :data:`VERSION_COLUMNS`."""
    body = row[5]
    return StoredResource(
        row[0],
        row[1],
        int(row[2]),
        row[3],
        bool(row[4]),
        bytes(body) if body is not None else None,
        int(row[6]),
        row[7],
    )


def content_hash(resource: dict[str, Any]) -> str:
    """SHA-256 of the resource (sorted keys) without the store-owned ``meta.versionId``/``lastUpdated``."""
    meta = resource.get("meta")
    if isinstance(meta, dict) and ("versionId" in meta or "lastUpdated" in meta):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        resource = {**resource, "meta": meta} if meta else {k: v for k, v in resource.items() if k != "meta"}
    return hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)).hexdigest()


def now_instant() -> str:
    """The store's clock as a FHIR instant (UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def next_time(tx: Tx, versions: int) -> tuple[int, int]:
    """Take the next logical time and reserve ``versions`` version keys; returns (t, first vid).

    The ``store_clock`` row lock is held until commit, so writers are serialised and t follows commit order.
    """
    row = tx.query_one("UPDATE store_clock SET t = t + 1, vid = vid + ? WHERE id = 1 RETURNING t, vid", (versions,))
    if row is None:
        raise StoreError("store_clock is empty: the schema is not migrated")
    return int(row[0]), int(row[1]) - versions + 1


def lock_clock(tx: Tx) -> None:
    """Serialise writers before they read current versions (PostgreSQL; SQLite has a single writer).

    Without it two concurrent writers of the same new resource would both decide "version 1" and the second
    would fail on the unique version key.
    """
    if tx.dialect == "postgresql":
        tx.execute("SELECT t FROM store_clock WHERE id = 1 FOR UPDATE")


def current_t(tx: Tx) -> int:
    """The logical time of the snapshot this transaction sees."""
    row = tx.query_one("SELECT t FROM store_clock WHERE id = 1")
    return int(row[0]) if row else 0


def _served(resource: dict[str, Any], version: int, instant: str) -> dict[str, Any]:
    """The resource as served: ``meta.versionId``/``lastUpdated`` set, ``resourceType, id, meta`` first."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = instant
    out = {"resourceType": resource["resourceType"], "id": resource["id"], "meta": meta}
    out.update((k, v) for k, v in resource.items() if k not in out)
    return out


def _current(tx: Tx, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int, str, bool]]:
    found: dict[tuple[str, str], tuple[int, int, str, bool]] = {}
    by_type: dict[str, list[str]] = {}
    for rtype, rid in keys:
        by_type.setdefault(rtype, []).append(rid)
    for rtype, ids in by_type.items():
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in tx.query(
                "SELECT res_id, vid, version, content_hash, deleted FROM resources "  # noqa: S608 - '?' marks only
                f"WHERE res_type = ? AND res_id IN ({marks})",
                (rtype, *chunk),
            ):
                found[(rtype, row[0])] = (int(row[1]), int(row[2]), row[3], bool(row[4]))
    return found


def current_ids(tx: Tx, resource_type: str, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` are current, not deleted, resources of ``resource_type``."""
    found = _current(tx, [(resource_type, rid) for rid in sorted(set(ids))])
    return {rid for (_, rid), (_, _, _, deleted) in found.items() if not deleted}


def put_resources(tx: Tx, writes: Iterable[ResourceWrite]) -> WriteCounts:
    """Store each resource as a new version unless its content is unchanged; index rows in the same tx.

    A resource that appears twice in ``writes`` keeps the last one.

    The CPU-heavy part — hashing, the served JSON, index extraction — runs *before* the logical clock is taken,
    against the current versions as they were read without the lock; on PostgreSQL the clock row lock (held to
    commit, so logical time follows commit order) then covers only re-reading those versions, numbering the new
    ones and the database writes. A resource another writer changed in between is re-judged under the lock
    (its content may now be unchanged, or its version number moved on); ``meta.versionId``, ``lastUpdated`` and
    the ``_lastUpdated`` index row are stamped only under the lock, so ``lastUpdated`` still follows commit order.
    """
    parsed: dict[tuple[str, str], tuple[ResourceWrite, dict[str, Any], str]] = {}
    for w in writes:
        try:
            resource = dict(w.parsed) if w.parsed is not None else orjson.loads(w.body)
        except orjson.JSONDecodeError as exc:
            raise StoreError(f"{w.resource_type}/{w.id}: body is not JSON: {exc}") from exc
        if resource.get("resourceType") != w.resource_type or resource.get("id") != w.id:
            raise StoreError(f"{w.resource_type}/{w.id}: body says {resource.get('resourceType')}/{resource.get('id')}")
        parsed[(w.resource_type, w.id)] = (w, resource, content_hash(resource))
    if not parsed:
        return WriteCounts()
    unlocked = _current(tx, list(parsed))
    staged = {key: _stage(item[1]) for key, item in parsed.items() if _differs(unlocked.get(key), item[2])}
    if tx.dialect == "postgresql":
        lock_clock(tx)
        current = _current(tx, list(parsed))  # what committed while this transaction worked unlocked
    else:
        current = unlocked  # SQLite's one writer holds the database from BEGIN IMMEDIATE: nothing moved
    todo = [key for key, item in parsed.items() if _differs(current.get(key), item[2])]
    unchanged = len(parsed) - len(todo)
    if not todo:
        return WriteCounts(unchanged=unchanged)
    t, vid = next_time(tx, len(todo))
    instant = now_instant()
    stamped = date_range(instant)
    versions, ended, heads = [], [], []
    index = _IndexBatch()
    new = 0
    for offset, key in enumerate(todo):
        w, resource, digest = parsed[key]
        served, rows = staged.get(key) or _stage(resource)
        this_vid = vid + offset
        previous = current.get(key)
        version = previous[1] + 1 if previous else 1
        new += previous is None
        served["meta"]["versionId"] = str(version)
        served["meta"]["lastUpdated"] = instant
        if stamped is not None:
            rows.dates = [(p, *stamped) if p == "_lastUpdated" else (p, low, high) for p, low, high in rows.dates]
        body = orjson.dumps(served)
        versions.append((this_vid, w.resource_type, w.id, version, t, instant, digest, 0, body, w.compartment))
        heads.append((w.resource_type, w.id, this_vid, version, t, instant, digest, w.compartment, w.source, 0))
        if previous:
            ended.append((t, previous[0]))
        index.add(this_vid, w.resource_type, rows)
    _write_versions(tx, versions, ended, heads)
    index.write(tx)
    return WriteCounts(new=new, changed=len(todo) - new, unchanged=unchanged)


def _differs(current: tuple[int, int, str, bool] | None, digest: str) -> bool:
    """Whether a resource with content ``digest`` is a new version over ``current`` (absent, deleted or changed)."""
    return current is None or current[3] or current[2] != digest


def _stage(resource: dict[str, Any]) -> tuple[dict[str, Any], IndexRows]:
    """The served form (version and instant stamped later) and its index rows."""
    served = _served(resource, 0, _UNSTAMPED)
    return served, extract_index(served)


#: a placeholder ``lastUpdated`` while a version is staged (a valid instant, so extraction treats it as one)
_UNSTAMPED = "1970-01-01T00:00:00.000Z"


_VERSION_COLUMNS = (
    "vid", "res_type", "res_id", "version", "t", "last_updated", "content_hash", "deleted", "body", "compartment",
)  # fmt: skip


def _write_versions(
    tx: Tx,
    versions: Sequence[Sequence[object]],
    ended: Sequence[tuple[object, object]],
    heads: Sequence[Sequence[object]],
) -> None:
    if isinstance(tx, BulkTx) and len(versions) > 1:
        tx.copy_rows("resource_versions", _VERSION_COLUMNS, versions)
    else:
        tx.executemany(
            "INSERT INTO resource_versions (vid, res_type, res_id, version, t, t_end, last_updated, content_hash,"
            " deleted, body, compartment) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
            versions,
        )
    update_rows(tx, "resource_versions", "vid", "t_end", ended)
    upsert_rows(tx, "resources", _HEAD_COLUMNS, heads, key=("res_type", "res_id"), update=_HEAD_COLUMNS[2:])


_HEAD_COLUMNS = (
    "res_type", "res_id", "vid", "version", "t", "last_updated", "content_hash", "compartment", "source", "deleted",
)  # fmt: skip

_TOKEN_COLUMNS = ("vid", "res_type", "param", "system", "code", "hash_value", "hash_sys_value", "hash_sys", "text")


class _IndexBatch:
    """Index rows of many versions, written with one ``executemany`` per table."""

    def __init__(self) -> None:
        self.tokens: list[tuple[object, ...]] = []
        self.strings: list[tuple[object, ...]] = []
        self.dates: list[tuple[object, ...]] = []
        self.references: list[tuple[object, ...]] = []
        self.quantities: list[tuple[object, ...]] = []
        self.uris: list[tuple[object, ...]] = []
        self.compartment: list[tuple[object, ...]] = []

    def add(self, vid: int, rtype: str, rows: IndexRows) -> None:
        self.tokens += [(vid, rtype, *r) for r in rows.tokens]
        self.strings += [(vid, rtype, *r) for r in rows.strings]
        self.dates += [(vid, rtype, *r) for r in rows.dates]
        self.references += [(vid, rtype, *r) for r in rows.references]
        self.quantities += [(vid, rtype, *r) for r in rows.quantities]
        self.uris += [(vid, rtype, *r) for r in rows.uris]
        self.compartment += [(p, vid, rtype) for p in sorted(rows.compartment)]

    def write(self, tx: Tx) -> None:
        tables = (
            ("idx_token", _TOKEN_COLUMNS, self.tokens),
            ("idx_string", ("vid", "res_type", "param", "norm", "exact"), self.strings),
            ("idx_date", ("vid", "res_type", "param", "low", "high"), self.dates),
            ("idx_reference", ("vid", "res_type", "param", "target_type", "target_id", "url"), self.references),
            ("idx_quantity", ("vid", "res_type", "param", "system", "code", "value"), self.quantities),
            ("idx_uri", ("vid", "res_type", "param", "uri"), self.uris),
            ("patient_compartment", ("patient_id", "vid", "res_type"), self.compartment),
        )
        for table, columns, rows in tables:
            if not rows:
                continue
            if isinstance(tx, BulkTx):
                tx.copy_rows(table, columns, rows)
            else:
                marks = ",".join("?" * len(columns))
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - fixed names
                tx.executemany(sql, rows)


def delete_resource(tx: Tx, resource_type: str, resource_id: str) -> int | None:
    """Record a deletion (a tombstone version); return its version, or None if absent or already deleted."""
    lock_clock(tx)
    row = tx.query_one(
        "SELECT vid, version, deleted, compartment, source FROM resources WHERE res_type = ? AND res_id = ?",
        (resource_type, resource_id),
    )
    if row is None or row[2]:
        return None
    t, vid = next_time(tx, 1)
    instant = now_instant()
    version = int(row[1]) + 1
    _write_versions(
        tx,
        [(vid, resource_type, resource_id, version, t, instant, "", 1, None, row[3])],
        [(t, int(row[0]))],
        [(resource_type, resource_id, vid, version, t, instant, "", row[3], row[4], 1)],
    )
    return version


def read_current(tx: Tx, resource_type: str, resource_id: str) -> StoredResource | None:
    """The current version (possibly a deletion), or None if the resource never existed."""
    row = tx.query_one(
        f"SELECT {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.vid = r.vid"  # noqa: S608
        " WHERE r.res_type = ? AND r.res_id = ?",
        (resource_type, resource_id),
    )
    return stored_from_row(row) if row else None


def read_version(tx: Tx, resource_type: str, resource_id: str, version: int) -> StoredResource | None:
    """One version, or None."""
    row = tx.query_one(
        f"SELECT {VERSION_COLUMNS} FROM resource_versions v"  # noqa: S608
        " WHERE v.res_type = ? AND v.res_id = ? AND v.version = ?",
        (resource_type, resource_id, version),
    )
    return stored_from_row(row) if row else None


def history(
    tx: Tx,
    resource_type: str,
    resource_id: str,
    *,
    since: str | None = None,
    count: int = 100,
    offset: int = 0,
    visibility: Visibility,
) -> list[StoredResource]:
    """Versions newest first (``since``: only versions last updated at or after this instant).

    Only versions ``visibility`` lets the caller see (a version labelled sensitive is not shown, nor counted
    in the paging, to a caller without the grant). Deletions have no labels and stay.
    """
    seen, seen_params = visibility.rows("v")
    sql = (
        f"SELECT {VERSION_COLUMNS} FROM resource_versions v WHERE v.res_type = ? AND v.res_id = ?"  # noqa: S608
        f" AND {seen}"
    )
    params: list[object] = [resource_type, resource_id, *seen_params]
    if since is not None:
        sql += " AND v.last_updated >= ?"
        params.append(since)
    sql += " ORDER BY v.version DESC LIMIT ? OFFSET ?"
    params += [count, offset]
    return [stored_from_row(r) for r in tx.query(sql, params)]
