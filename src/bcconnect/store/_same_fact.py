"""Same-fact keys: what the view needs to serve one fact sent by two trusts once, kept per version.

The view decides when two resources are the same fact (``bcconnect.view._dedupe``); it hands the store a
*keyer* that turns a version's JSON into a fact key (or None) and the trust it came from. Versions never
change, so each is keyed once into ``same_fact_key`` (:func:`fill_fact_keys`) and a person's record is read
with its keys (:func:`person_records`): collapsing duplicates then needs no JSON parsed. A version not keyed
yet comes back without a key and the view keys it itself, so an answer never depends on the table being full.
"""

# ruff: noqa: S608 - SQL assembled from fixed fragments; every value is a '?' parameter

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bcconnect.store._resources import VERSION_COLUMNS, StoredResource, current_t, stored_from_row
from bcconnect.store._search import (
    _CLOCK,
    EVERYTHING_REFERENCED,
    EverythingQuery,
    _everything_filters,
    _everything_where,
    _page_t,
    _references_shown,
    check_snapshot,
)
from bcconnect.store._search_sql import valid_at
from bcconnect.store._tx import Tx
from bcconnect.store._visibility import Visibility

#: ``(resource type, JSON body) → (fact key or None, trust ODS code or "")``
FactKeyer = Callable[[str, bytes], tuple[str | None, str]]

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class KeyedRecord:
    """One row of a person's record: its version key, the resource, and its same-fact key if already kept."""

    vid: int
    resource: StoredResource
    #: whether ``same_fact_key`` holds this version (``fact_key`` None then means "never the same fact")
    keyed: bool
    fact_key: str | None
    ods: str


def person_records(
    tx: Tx, query: EverythingQuery, patients: Sequence[str], *, visibility: Visibility, at: int | None = None
) -> tuple[int, list[KeyedRecord]]:
    """Every resource of several Patients' ``$everything`` (a person's records) at ``at``, in one read, each with
    its same-fact key when kept. Returns the logical time read at and the rows in (type, version key) order."""
    check_snapshot(tx, at)
    if not patients:
        return (at if at is not None else current_t(tx)), []
    where, params = _everything_where(query, patients, at, visibility)
    rows = tx.query(
        f"SELECT {_CLOCK}, v.vid, k.vid, k.fact_key, k.ods, {VERSION_COLUMNS} FROM resource_versions v"
        f" LEFT JOIN same_fact_key k ON k.vid = v.vid WHERE {where} ORDER BY v.res_type, v.vid",
        params,
    )
    found = [KeyedRecord(int(r[1]), stored_from_row(r[5:]), r[2] is not None, r[3], str(r[4] or "")) for r in rows]
    return _page_t(tx, at, rows), found


#: One row of a person's record without its body, what paging and the duplicate collapse need: ``(version key,
#: type, id, keyed, fact key, trust, body)``. ``keyed``: whether ``same_fact_key`` holds this version (a fact key of
#: None then means "never the same fact"); ``body``: the JSON, only for a version not keyed yet of a type the caller
#: keys, else None. A plain tuple, as the driver makes it: a 5,000-resource record is 5,000 of them per read, and
#: a class per row cost as much as the SQL (fields by position: :data:`KEY_VID` …).
RecordKey = tuple[int, str, str, bool, str | None, str, bytes | None]
KEY_VID, KEY_TYPE, KEY_ID, KEY_KEYED, KEY_FACT, KEY_ODS, KEY_BODY = range(7)


def person_record_keys(
    tx: Tx,
    query: EverythingQuery,
    patients: Sequence[str],
    *,
    visibility: Visibility,
    body_types: Sequence[str],
    at: int | None = None,
) -> tuple[int, list[RecordKey]]:
    """A person's ``$everything`` rows like :func:`person_records`, but without their bodies: a body comes back only
    for a version of ``body_types`` with no kept key (the caller keys it). One read, rows in no particular order
    (the caller orders what it serves). A page then reads just its own rows' bodies (:func:`versions_by_key`).

    The compartment is read once, with its keys, into a materialised CTE that the referenced resources are then
    found from (:func:`~bcconnect.store._search._everything_where` walks it twice, and reads each row twice):
    the same rows, screened the same way, at about half the SQL time on a 5,000-resource person.
    """
    check_snapshot(tx, at)
    t = _page_t(tx, at, ())
    if not patients:
        return t, []
    live, live_params = valid_at("v", at)
    live_rv, _ = valid_at("rv", at)
    seen, seen_params = visibility.rows("v")
    not_hidden, hidden_params = _references_shown(patients, visibility)
    asked, asked_params = _everything_filters(query)
    wanted = list(dict.fromkeys(body_types)) or [""]
    body_marks = ",".join("?" * len(wanted))
    columns = (
        "v.vid, v.res_type, v.res_id, k.vid IS NOT NULL AS keyed, k.fact_key, COALESCE(k.ods, '') AS ods,"
        f" CASE WHEN k.vid IS NULL AND v.res_type IN ({body_marks}) THEN v.body END AS body"
    )
    # the compartment rows the caller may see (what the references are followed from), before $everything's own
    # parameters narrow what is returned
    marks = ",".join("?" * len(patients))
    if tx.dialect == "postgresql":
        # one primary-key lookup per compartment version (a LATERAL with LIMIT is not flattened): with statistics,
        # ``v.vid IN (…)`` or a plain join ran as a hash join over a sequential scan of every version, a cost that
        # grows with the store, not the person (84-113 ms at 155,000 versions against 46-53 ms, under load)
        versions = (
            f"(SELECT DISTINCT pc.vid FROM patient_compartment pc WHERE pc.patient_id IN ({marks})) p"
            " CROSS JOIN LATERAL (SELECT * FROM resource_versions x WHERE x.vid = p.vid LIMIT 1) v"
        )
        where = f"{live} AND {seen}"
    else:
        # SQLite already drives ``IN`` from the compartment index, a third cheaper than the DISTINCT join (9-13 ms
        # against 14-17 on a 5,000-resource person)
        versions = "resource_versions v"
        in_compartment = f"SELECT pc.vid FROM patient_compartment pc WHERE pc.patient_id IN ({marks})"
        where = f"v.vid IN ({in_compartment}) AND {live} AND {seen}"
    compartment = (
        f"SELECT {columns}, v.last_updated FROM {versions} LEFT JOIN same_fact_key k ON k.vid = v.vid WHERE {where}"
    )
    # targets first (few), then their versions: CROSS JOIN keeps SQLite from scanning versions by type
    referenced = (
        "SELECT rv.vid FROM (SELECT DISTINCT r.target_type AS tt, r.target_id AS ti FROM idx_reference r"
        f" WHERE r.vid IN (SELECT c.vid FROM c) AND r.target_type IN ({','.join('?' * len(EVERYTHING_REFERENCED))})"
        f"{not_hidden}) tr"
        f" CROSS JOIN resource_versions rv WHERE rv.res_type = tr.tt AND rv.res_id = tr.ti AND {live_rv}"
    )
    rows = tx.query(
        f"WITH c AS MATERIALIZED ({compartment})"
        f" SELECT v.vid, v.res_type, v.res_id, v.keyed, v.fact_key, v.ods, v.body FROM c v WHERE 1 = 1{asked}"
        f" UNION ALL SELECT {columns} FROM resource_versions v LEFT JOIN same_fact_key k ON k.vid = v.vid"
        f" WHERE v.vid IN ({referenced}) AND v.vid NOT IN (SELECT c.vid FROM c) AND {seen}{asked}",
        [
            *wanted,
            *patients,
            *live_params,
            *seen_params,
            *asked_params,
            *wanted,
            *EVERYTHING_REFERENCED,
            *hidden_params,
            *live_params,
            *seen_params,
            *asked_params,
        ],
    )
    if any(row[KEY_BODY] is not None and not isinstance(row[KEY_BODY], bytes) for row in rows):
        rows = [(*row[:KEY_BODY], None if row[KEY_BODY] is None else bytes(row[KEY_BODY])) for row in rows]
    return t, rows  # the driver's tuples have the RecordKey layout


def versions_by_key(tx: Tx, vids: Sequence[int]) -> dict[int, StoredResource]:
    """The stored versions with these version keys (bodies included), by key. Versions never change, so this
    answers the same in any transaction; the caller chose the keys under its screen."""
    out: dict[int, StoredResource] = {}
    for i in range(0, len(vids), _CHUNK):
        chunk = list(vids[i : i + _CHUNK])
        rows = tx.query(
            f"SELECT v.vid, {VERSION_COLUMNS} FROM resource_versions v WHERE v.vid IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        out.update((int(r[0]), stored_from_row(r[1:])) for r in rows)
    return out


def fill_fact_keys(tx: Tx, vids: Sequence[int], keyer: FactKeyer) -> int:
    """Key these versions (those not keyed yet); how many were. For a write transaction."""
    keyed = []
    for i in range(0, len(vids), _CHUNK):
        chunk = list(vids[i : i + _CHUNK])
        rows = tx.query(
            f"SELECT v.vid, v.res_type, v.body FROM resource_versions v WHERE v.vid IN ({','.join('?' * len(chunk))})"
            " AND v.body IS NOT NULL AND NOT EXISTS (SELECT 1 FROM same_fact_key k WHERE k.vid = v.vid)",
            chunk,
        )
        for vid, res_type, body in rows:
            key, ods = keyer(str(res_type), bytes(body))
            keyed.append((int(vid), key, ods))
    # two readers may key the same version at once: the key is the same, so the second one keeps the first's
    tx.executemany(
        "INSERT INTO same_fact_key (vid, fact_key, ods) VALUES (?, ?, ?) ON CONFLICT (vid) DO NOTHING", keyed
    )
    return len(keyed)
