"""Settling persons: stable person ids, and the golden Patient stored as a resource like any other.

Every change of a link marks the persons it touches (``identity_person_dirty``); :func:`settle_persons`, run
before the transaction commits, then for each of them

1. gives the person its **stable id**: ``uuid5`` of the smallest id among its MATCHed source records, so the
   same data gives the same person ids on every run whatever order the trusts' records arrived in. A person
   whose stable id changes (a record with a smaller id joined, or persons were joined) is renamed: all its
   links, flags and reviews move, and the old id stays answering (below);
2. **stores its golden Patient** (``Patient/<person id>``, tagged golden, composed from the current source
   Patients by the survivorship rules) through the store, so it is versioned (``_history``, ``vread``),
   indexed for every search parameter, and included/revincluded like any resource;
3. records the person's **reference aliases** (every source Patient id → the golden id), which the view uses
   to serve references re-pointed to the golden Patient and the store uses to match them in searches;
4. **retires** a golden Patient whose person no longer exists: a new version, ``active: false``, with a
   ``link`` of type ``replaced-by`` to the person its records went to (a merge or a rename), never a 404.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson

from bcconnect.fhir.constants import PERSON_ID_SYSTEM
from bcconnect.identity import _db, _linker, _steward
from bcconnect.identity._decide import LinkState
from bcconnect.identity._evaluate import new_person_id
from bcconnect.identity._golden import GOLDEN_TAG, compose_golden
from bcconnect.identity._linker import LinkOutcome, default_rules
from bcconnect.identity._rules import Rules
from bcconnect.store import (
    ResourceWrite,
    Tx,
    delete_resource,
    drop_aliases,
    put_resources,
    read_current,
    set_aliases,
)

#: the ``source`` the store records for golden Patients (they come from the patient index, not a trust)
GOLDEN_SOURCE: Final = "patient-index"


def mark_dirty(tx: Tx, person_ids: Iterable[str]) -> None:
    """Note persons whose golden Patient must be settled before the transaction commits."""
    rows = [(p,) for p in dict.fromkeys(person_ids) if p]
    if rows:
        tx.executemany("INSERT INTO identity_person_dirty (person_id) VALUES (?) ON CONFLICT DO NOTHING", rows)


def stable_person_id(matched: Iterable[str]) -> str:
    """The id of the person made of these MATCHed source records: independent of the order they arrived in."""
    return new_person_id(min(matched))


def _matched(tx: Tx, person_id: str) -> list[str]:
    return [lk.patient_id for lk in _db.links_to(tx, person_id, (LinkState.MATCH,))]


def _rename(tx: Tx, old: str, new: str, *, now: str) -> None:
    """Move every link, flag and open review of person ``old`` to ``new`` (history kept)."""
    for link in _db.links_to(tx, old, tuple(LinkState)):
        _db.remove_link(tx, link, actor=_db.SYSTEM_ACTOR, reason=f"person renamed to its stable id {new}", now=now)
        if not any(x.person_id == new for x in _db.links_of(tx, link.patient_id)):
            moved = _db.Link(link.patient_id, new, link.state, link.source, link.score, link.rule,
                             link.rules_version, now)  # fmt: skip
            _db.set_link(tx, moved, actor=_db.SYSTEM_ACTOR, reason=f"person {old} renamed")
    tx.execute("UPDATE identity_review SET person_id = ? WHERE person_id = ? AND status = 'open'", (new, old))
    # persons joined into ``old`` by re-clustering now redirect to ``new``, and so does ``old`` itself
    tx.execute("UPDATE identity_person_merge SET into_person_id = ? WHERE into_person_id = ?", (new, old))
    tx.execute(
        "INSERT INTO identity_person_merge (absorbed_person_id, into_person_id, via_patient_id, rule, rules_version, "
        "created_at) VALUES (?, ?, '', 'stable-id', '', ?) ON CONFLICT (absorbed_person_id) DO UPDATE SET "
        "into_person_id = excluded.into_person_id, rule = excluded.rule, created_at = excluded.created_at",
        (old, new, now),
    )
    tx.execute("DELETE FROM identity_person_merge WHERE absorbed_person_id = ?", (new,))


def _settle_id(tx: Tx, person: str, renames: dict[str, str], visiting: set[str], *, now: str) -> str:
    """Rename ``person`` to its stable id (first moving away another person holding that id); its final id."""
    matched = _matched(tx, person)
    if not matched:
        return person
    stable = stable_person_id(matched)
    if stable == person:
        return person
    visiting.add(person)
    if stable not in visiting and _matched(tx, stable):
        # the id is held by a person its founding record has since left: that person moves to its own id
        _settle_id(tx, stable, renames, visiting, now=now)
    if _matched(tx, stable):
        return person  # cannot happen for distinct member sets; never merge two persons by renaming
    _rename(tx, person, stable, now=now)
    _db.ensure_person(tx, stable, founded_by=min(matched), now=now)
    renames[person] = stable
    return stable


def _retired(person_id: str, successor: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": person_id,
        "meta": {"tag": [dict(GOLDEN_TAG)]},
        "identifier": [{"system": PERSON_ID_SYSTEM, "value": person_id}],
        "active": False,
        "link": [{"other": {"reference": f"Patient/{successor}"}, "type": "replaced-by"}],
    }


def _successor(tx: Tx, person_id: str, renames: dict[str, str]) -> str | None:
    """Where the records of a person that no longer exists went (from its golden Patient's last links)."""
    if person_id in renames:
        return renames[person_id]
    stored = read_current(tx, "Patient", person_id)
    if stored is None or stored.body is None:
        return None
    for link in orjson.loads(stored.body).get("link") or ():
        ref = str((link.get("other") or {}).get("reference", ""))
        if link.get("type") == "replaced-by":
            return None  # already retired
        moved = _db.matched_person(tx, ref.removeprefix("Patient/")) if ref.startswith("Patient/") else None
        if moved is not None:
            return moved
    return None


def _as_sent(body: bytes) -> dict[str, Any]:
    """A source Patient without the store's own ``meta.versionId``/``lastUpdated``: when this store happened
    to write a record must not decide what the golden Patient says (the same data, the same golden Patient)."""
    patient: dict[str, Any] = orjson.loads(body)
    meta = {k: v for k, v in (patient.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    patient["meta"] = meta
    return patient


def _golden_writes(tx: Tx, persons: Sequence[str], renames: dict[str, str], rules: Rules) -> list[ResourceWrite]:
    writes = []
    for person in persons:
        members = [lk.patient_id for lk in _db.links_to(tx, person)]
        sources = [read_current(tx, "Patient", pid) for pid in sorted(members)]
        bodies = [_as_sent(s.body) for s in sources if s is not None and not s.deleted and s.body is not None]
        if bodies:
            golden = compose_golden(person, bodies, rules)
            writes.append(ResourceWrite("Patient", person, orjson.dumps(golden), GOLDEN_SOURCE, person))
            set_aliases(tx, "Patient", person, members)
            continue
        drop_aliases(tx, "Patient", person)
        successor = _successor(tx, person, renames)
        if successor is not None and successor != person:
            writes.append(ResourceWrite("Patient", person, orjson.dumps(_retired(person, successor)), GOLDEN_SOURCE,
                                        person))  # fmt: skip
        elif not members:
            stored = read_current(tx, "Patient", person)
            if stored is not None and not stored.deleted and b'"replaced-by"' not in (stored.body or b""):
                delete_resource(tx, "Patient", person)  # its records are gone: 410 Gone, honestly
    return writes


def settle_persons(tx: Tx, *, patient_ids: Iterable[str] = (), rules: Rules | None = None) -> dict[str, str]:
    """Settle every dirty person (and the persons of ``patient_ids``, whose Patients may just have changed).

    Returns the renames made (old person id → stable id). Runs in the caller's transaction, after the source
    Patients it composes from are written.
    """
    rules = rules or default_rules()
    ids = list(patient_ids)
    if ids:
        mark_dirty(tx, (p for p in (_db.matched_person(tx, pid) for pid in ids) if p))
    dirty = [str(r[0]) for r in tx.query("SELECT person_id FROM identity_person_dirty ORDER BY person_id")]
    if not dirty:
        return {}
    now = _db.utc_now()
    renames: dict[str, str] = {}
    final = [_settle_id(tx, person, renames, set(), now=now) for person in dirty]
    persons = list(dict.fromkeys([*final, *dirty, *renames]))
    writes = _golden_writes(tx, persons, renames, rules)
    if writes:
        put_resources(tx, writes)
    tx.execute("DELETE FROM identity_person_dirty")
    return renames


# The public operations that move links settle before they return, so a caller never sees a person whose
# golden Patient, id or aliases lag behind its links.


def link_patients(
    tx: Tx,
    patients: Sequence[Mapping[str, Any]],
    *,
    ods_code: str,
    rules: Rules | None = None,
    settle: bool = True,
) -> list[LinkOutcome]:
    """Link a page's source Patients (see :func:`bcconnect.identity._linker.link_patients`), then settle.

    ``settle=False`` leaves the settling to the caller, who must call :func:`settle_persons` with the page's
    Patient ids once the Patients themselves are written (ingest links before it writes).
    """
    outcomes = _linker.link_patients(tx, patients, ods_code=ods_code, rules=rules)
    if not settle:
        return outcomes
    renames = settle_persons(tx, patient_ids=[o.patient_id for o in outcomes], rules=rules)
    return [replace(o, person_id=renames.get(o.person_id, o.person_id)) for o in outcomes]


def merge(
    tx: Tx, patient_id: str, target_patient_id: str, *, origin: str, actor: str = _db.SYSTEM_ACTOR,
    rules: Rules | None = None,
) -> str:  # fmt: skip
    """Merge a source record into another (see :func:`bcconnect.identity._linker.merge`); the settled person."""
    person = _linker.merge(tx, patient_id, target_patient_id, origin=origin, actor=actor, rules=rules)
    return settle_persons(tx, rules=rules).get(person, person)


def unmerge(tx: Tx, patient_id: str, *, actor: str) -> str:
    """Undo a record's merge (see :func:`bcconnect.identity._linker.unmerge`); the settled person."""
    person = _linker.unmerge(tx, patient_id, actor=actor)
    return settle_persons(tx).get(person, person)


def accept_review(tx: Tx, review_id: str, *, actor: str, note: str | None = None) -> str:
    """Accept a review item (see :func:`bcconnect.identity._steward.accept_review`); the settled person."""
    person = _steward.accept_review(tx, review_id, actor=actor, note=note)
    return settle_persons(tx).get(person, person)


def reject_review(tx: Tx, review_id: str, *, actor: str, note: str | None = None) -> None:
    """Reject a review item (see :func:`bcconnect.identity._steward.reject_review`), then settle."""
    _steward.reject_review(tx, review_id, actor=actor, note=note)
    settle_persons(tx)


@dataclass(frozen=True, slots=True)
class RelinkPage:
    """One page of a batch re-link: how many records were decided again and what changed for them."""

    #: records decided again in this page
    records: int
    #: of them, records MATCHed to another person after the page than before it (settled ids compared)
    moved: int
    #: persons joined into another because a record of the page connected them (``person-join``)
    joined: int
    #: of them, records left with an open possible match or possible duplicate (the review queue)
    flagged: int
    #: the last record id of the page, where the next page starts; None when there was nothing left
    last: str | None


def relink_page(tx: Tx, *, after: str | None, limit: int, rules: Rules | None = None) -> RelinkPage:
    """Decide the next ``limit`` stored records (in id order, after ``after``) again under ``rules``, then settle.

    The batch re-link after a rules or weights change, one page per transaction; see
    :func:`bcconnect.identity._linker.relink_records` for what a record goes through.
    """
    ids = _db.record_ids(tx, after=after, limit=limit)
    if not ids:
        return RelinkPage(0, 0, 0, 0, None)
    before = {pid: _db.matched_person(tx, pid) for pid in ids}
    joins_before = _person_joins(tx)
    outcomes = _linker.relink_records(tx, ids, rules=rules)
    settle_persons(tx, patient_ids=ids, rules=rules)
    moved = sum(1 for pid in ids if _db.matched_person(tx, pid) != before[pid])
    joined = _person_joins(tx) - joins_before
    return RelinkPage(len(ids), moved, joined, sum(1 for o in outcomes if o.review), ids[-1])


def _person_joins(tx: Tx) -> int:
    row = tx.query_one("SELECT COUNT(*) FROM identity_person_merge WHERE rule = 'person-join'")
    return int(row[0]) if row else 0


def index_size(tx: Tx) -> tuple[int, int]:
    """How many source records the index holds, and how many persons they are MATCHed to."""
    records = tx.query_one("SELECT COUNT(*) FROM identity_record")
    persons = tx.query_one("SELECT COUNT(DISTINCT person_id) FROM identity_link WHERE state = 'MATCH'")
    return (int(records[0]) if records else 0, int(persons[0]) if persons else 0)
