"""Person-centred reading: golden Patients, references re-pointed to them, any Patient id of a person.

The person model (docs/ARCHITECTURE.md, "The person model"): a person is served as its **golden Patient**
``Patient/<person id>``, stored by the patient index as a resource like any other (tagged
``record-kind|golden``, versioned, searchable), with a ``link`` of type ``seealso`` to each source Patient. A
source Patient is served as received plus a ``link`` of type ``refer`` to its golden Patient. Every other
reference to a source Patient is served pointing at the golden Patient, the stored reference kept on the
Reference in the :data:`SOURCE_REFERENCE_EXTENSION` extension. All Patient ids of one person are one Patient
for reference matching (``patient=``/``subject=``, ``_include``, ``_revinclude``, chains) and for
``$everything``: any of them gives the whole person's cross-trust record.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import replace
from operator import itemgetter
from typing import Any, Final

import orjson

from bcconnect.fhir.constants import BCCONNECT_BASE, PERSON_ID_SYSTEM
from bcconnect.identity import GOLDEN_TAG, Rules, compose_golden
from bcconnect.store import (
    EverythingQuery,
    KeyedRecord,
    RecordKey,
    SearchPage,
    StoredResource,
    Tx,
    Visibility,
    alias_closure,
    alias_members,
    canonical_ids,
    fill_fact_keys,
    person_record_keys,
    read_current,
    versions_by_key,
)
from bcconnect.view._dedupe import FACT_TYPES, collapse_keyed, collapse_plan, fact_key, fold_others

#: extension on a re-pointed Reference: the source Patient it pointed at as stored
SOURCE_REFERENCE_EXTENSION: Final = BCCONNECT_BASE + "/StructureDefinition/source-reference"

#: the person model as the CapabilityStatement states it (on the Patient resource and the server)
PERSON_MODEL_DOC: Final = (
    "Person model: each person is served as a golden Patient (meta.tag "
    f"{GOLDEN_TAG['system']}|{GOLDEN_TAG['code']}; identifier {PERSON_ID_SYSTEM}|<person id>; link seealso to "
    "each source Patient), stored, versioned and searchable like any Patient. Source Patients from each trust are "
    "served as received plus a link of type refer to their golden Patient. Patient?identifier=<NHS number> "
    "returns the golden Patient and the source records; add _tag="
    f"{GOLDEN_TAG['system']}|{GOLDEN_TAG['code']} for one Patient per person. Every other reference to a source "
    "Patient is served pointing at the golden Patient (the stored reference in the extension "
    f"{SOURCE_REFERENCE_EXTENSION}). All Patient ids of one person are one Patient for reference matching "
    "(patient=, subject= and every Patient reference parameter, _include, _revinclude, chains) and for "
    "$everything: any of them gives the whole cross-trust record, golden Patient first. Patient.link is matched "
    "as served. Person ids are stable (the same data gives the same ids); an id retired by a merge answers with "
    "active=false and a link of type replaced-by to the surviving person."
)

Screen = Callable[[list[StoredResource]], list[StoredResource]]


#: One resource of a person's deduplicated record, without its body: ``(type, id, version key, trust, folds)``,
#: ``folds`` the other trusts' rows of the same fact it is served in place of, ``(version key, type, id, trust)``
#: each. A plain tuple (a large record makes thousands per read: a class per entry cost a fifth of a cold page),
#: ordered by (type, id), which lead it and are unique in a record.
RecordEntry = tuple[str, str, int, str, tuple[tuple[int, str, str, str], ...]]

#: a person's deduplicated record at one snapshot: ``t`` and its entries in (type, id) order
PersonIndex = tuple[int, list[RecordEntry]]

#: where an entry's (type, id) are: the order a page's cursor is found in
_TYPE_ID = itemgetter(0, 1)


class RecordCache:
    """A person's deduplicated record index at one logical time ``t``, kept for the next pages of the snapshot.

    A snapshot never changes, so a hit is exactly what reading again would give; it makes every page after the
    first cost what its own slice costs. Bounded (least recently used out); per process. Entries carry no bodies
    (a 5,000-resource person is a few hundred kilobytes), so a page reads only its own rows' JSON.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.items: OrderedDict[Hashable, PersonIndex] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Hashable) -> PersonIndex | None:
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
            return found

    def put(self, key: Hashable, value: PersonIndex) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


#: rows read per store call when gathering a person's $everything
_GATHER = 500


def person_id_of(tx: Tx, patient_id: str) -> str | None:
    """The person (golden Patient id) any Patient id of a person belongs to, or None."""
    return canonical_ids(tx, "Patient", [patient_id]).get(patient_id)


def person_members(tx: Tx, person_id: str) -> list[str]:
    """The source Patient ids of a person (its golden id left out), sorted."""
    return [m for m in alias_members(tx, "Patient", [person_id]).get(person_id, []) if m != person_id]


def same_person_ids(tx: Tx, patient_id: str) -> list[str]:
    """Every Patient id of the person ``patient_id`` is or belongs to (itself when it is no person's)."""
    return alias_closure(tx, "Patient", [patient_id])[patient_id]


def is_golden(item: StoredResource) -> bool:
    """Whether a stored Patient is a golden (person-level) Patient."""
    return (
        item.resource_type == "Patient"
        and item.body is not None
        and b'"golden"' in item.body
        and any(
            t.get("system") == GOLDEN_TAG["system"] and t.get("code") == GOLDEN_TAG["code"]
            for t in (orjson.loads(item.body).get("meta") or {}).get("tag") or ()
        )
    )


def present_golden(
    tx: Tx,
    item: StoredResource,
    rules: Rules,
    screen: Screen,
    *,
    sources_read: Sequence[StoredResource | None] | None = None,
) -> StoredResource | None:
    """A golden Patient as this caller may see it: as stored when every source Patient is visible, else
    composed from the visible ones only (same version), or None when none is.

    The stored golden carries every source's security labels; a caller who may not see one source must still
    see the person as the others describe it (and must not learn what the hidden one said).

    ``sources_read``: the person's source Patients (current versions, one per member) when the caller already
    read them for a page of persons at once; read here otherwise.
    """
    if sources_read is None:
        members = person_members(tx, item.id)
        if not members:
            return item  # a retired golden Patient (replaced-by): nothing composed from sources
        sources = [read_current(tx, "Patient", pid) for pid in members]
    elif not sources_read:
        return item
    else:
        sources = list(sources_read)
    current = [s for s in sources if s is not None and not s.deleted and s.body is not None]
    visible = screen(current)
    if len(visible) == len(current):
        return item
    if not visible:
        return None
    golden = compose_golden(item.id, [_as_sent(v.body) for v in visible if v.body is not None], rules)
    golden["meta"]["versionId"] = item.version_id
    golden["meta"]["lastUpdated"] = item.last_updated
    out = {"resourceType": "Patient", "id": item.id, **golden}
    return replace(item, body=orjson.dumps(out))


def present_goldens(tx: Tx, items: Sequence[StoredResource], rules: Rules, screen: Screen) -> list[StoredResource]:
    """Every golden Patient among ``items`` as :func:`present_golden` gives it (order kept)."""
    out = []
    for item in items:
        shown = present_golden(tx, item, rules, screen) if is_golden(item) else item
        if shown is not None:
            out.append(shown)
    return out


def _as_sent(body: bytes) -> dict[str, Any]:
    patient: dict[str, Any] = orjson.loads(body)
    patient["meta"] = {k: v for k, v in (patient.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    return patient


#: a literal reference to a Patient as it appears in stored JSON (orjson writes no spaces)
_PATIENT_REFERENCE = re.compile(rb'"reference":"Patient/([^"/]+)"')


def _repoint(node: Any, person_of: dict[str, str]) -> bool:
    """Re-point, in place, every Patient reference inside ``node`` to its golden Patient; whether any was."""
    changed = False
    if isinstance(node, list):
        for value in node:
            changed = _repoint(value, person_of) or changed
        return changed
    if not isinstance(node, dict):
        return False
    for value in node.values():
        if isinstance(value, (dict, list)):
            changed = _repoint(value, person_of) or changed
    ref = node.get("reference")
    if isinstance(ref, str) and ref.startswith("Patient/") and ref[8:] in person_of:
        node["reference"] = f"Patient/{person_of[ref[8:]]}"
        node["extension"] = [
            *node.get("extension", ()),
            {"url": SOURCE_REFERENCE_EXTENSION, "valueReference": {"reference": ref}},
        ]
        changed = True
    return changed


def person_centred(tx: Tx, resources: Iterable[StoredResource]) -> list[StoredResource]:
    """Resources as the view serves them: Patient references re-pointed to golden Patients; a source Patient
    carries a ``link`` (type ``refer``) to its golden Patient."""
    items = list(resources)
    wanted: set[str] = set()
    for item in items:
        if item.body is not None:
            wanted.update(m.decode() for m in _PATIENT_REFERENCE.findall(item.body))
            if item.resource_type == "Patient":
                wanted.add(item.id)
    canon = canonical_ids(tx, "Patient", wanted) if wanted else {}
    person_of = {i: c for i, c in canon.items() if i != c}
    out = []
    for item in items:
        body = item.body
        is_source = item.resource_type == "Patient" and item.id in person_of
        if body is None or not person_of or not (is_source or _PATIENT_REFERENCE.search(body)):
            out.append(item)
            continue
        served: dict[str, Any] = orjson.loads(body)
        # a Patient's own ``link`` names particular records (its sources, a merge): never re-pointed
        own_links = served.pop("link", None) if item.resource_type == "Patient" else None
        changed = _repoint(served, person_of)
        if own_links is not None:
            served["link"] = own_links
        if is_source:
            served["link"] = [
                *(link for link in own_links or () if link.get("type") != "refer"),
                {"other": {"reference": f"Patient/{person_of[item.id]}"}, "type": "refer"},
            ]
            changed = True
        out.append(replace(item, body=orjson.dumps(served)) if changed else item)
    return out


def person_record(
    person_id: str, found: Iterable[KeyedRecord], priority: Sequence[str], unkeyed: list[int] | None
) -> list[StoredResource]:
    """One person's rows (as read with their keys) as served: the golden Patient left out (it leads, composed
    for the caller), one fact from two trusts shown once, ordered by (type, id). Versions with no kept key are
    keyed here and their version keys added to ``unkeyed`` for the caller to keep (:func:`key_facts`)."""
    collected: dict[tuple[str, str], tuple[StoredResource, str | None, str]] = {}
    for row in found:
        item = row.resource
        same, ods = row.fact_key, row.ods
        if not row.keyed and item.resource_type in FACT_TYPES and item.body is not None:
            # arrived since the person was last read: keyed here, and kept for next time by the caller
            same, ods = fact_key(item.resource_type, item.body)
            if unkeyed is not None:
                unkeyed.append(row.vid)
        collected[(item.resource_type, item.id)] = (item, same, ods)
    collected.pop(("Patient", person_id), None)  # the golden Patient (in its sources' compartments) leads
    # one fact sent by two trusts is shown once, carrying both trusts' tags (from keys kept per version)
    deduped = collapse_keyed(list(collected.values()), priority)
    return sorted(deduped, key=lambda r: (r.resource_type, r.id))


def person_index(
    person_id: str, found: Iterable[RecordKey], priority: Sequence[str], unkeyed: list[int] | None
) -> list[RecordEntry]:
    """:func:`person_record` without bodies: the entries of one person's record as served, one fact from two trusts
    once (the same grouping and survivor, :func:`~bcconnect.view._dedupe.collapse_plan`), ordered by (type, id).
    ``found`` may come in any order (ties between trusts go to the earlier version, as in the record's order).
    Versions with no kept key come with their bodies; they are keyed here and added to ``unkeyed``."""
    entries: list[RecordEntry] = []
    facts: list[tuple[str | None, str]] = []
    for vid, rtype, rid, keyed, key, ods, body in found:
        if rid == person_id and rtype == "Patient":
            continue  # the golden Patient (in its sources' compartments) leads
        if not keyed and body is not None and rtype in FACT_TYPES:
            key, ods = fact_key(rtype, body)
            if unkeyed is not None:
                unkeyed.append(vid)
        entries.append((rtype, rid, vid, ods, ()))
        facts.append((key, ods))
    dropped, folds = collapse_plan(facts, priority, order=[e[2] for e in entries])
    for keep, others in folds.items():
        rtype, rid, vid, ods, _ = entries[keep]
        entries[keep] = (rtype, rid, vid, ods, tuple((entries[i][2], *entries[i][:2], entries[i][3]) for i in others))
    if dropped:
        entries = [e for i, e in enumerate(entries) if i not in dropped]
    entries.sort()  # (type, id) lead each entry, and (type, id) is unique
    return entries


def _served(tx: Tx, entries: Sequence[RecordEntry], priority: Sequence[str]) -> list[StoredResource]:
    """The page's resources: their bodies read by version key, each kept fact carrying the others' trusts."""
    found = versions_by_key(tx, [vid for _, _, vid, _, _ in entries])
    out = []
    for _, _, vid, ods, folds in entries:
        item = found[vid]
        out.append(fold_others(item, folds, ods, priority) if folds else item)
    return out


def everything_for_person(
    tx: Tx,
    person_id: str,
    query: EverythingQuery,
    *,
    at: int | None,
    offset: int,
    golden: StoredResource | None,
    priority: Sequence[str] = (),
    after: str | None = None,
    cache: RecordCache | None = None,
    visibility: Visibility,
    unkeyed: list[int] | None = None,
) -> SearchPage:
    """``$everything`` of a person: the compartments of all its source Patients at one logical time.

    The golden Patient comes first, then every resource of every source in a stable order (type, id); a page
    starts after the previous page's last ``type/id`` (``after``), so pages stay exact while the snapshot
    ``t`` is pinned. A fact two trusts both sent appears once (see :mod:`bcconnect.view._dedupe`), which needs
    every row of the person's record, but not their bodies: the record is read as version keys with each
    version's kept same-fact key (:func:`~bcconnect.store.person_record_keys`), collapsed, and only the page's
    rows' JSON is read. Versions not keyed yet are keyed here and their version keys added to ``unkeyed`` for
    the caller to keep (:func:`key_facts`).
    """
    # the records are screened for this caller in the SQL, so the cache is keyed by what the caller may see
    key = visibility.key()
    asked = replace(query, count=0)
    cached = cache.get((person_id, asked, at, key)) if cache is not None and at is not None else None
    if cached is None:
        t, found = person_record_keys(
            tx, query, person_members(tx, person_id), at=at, visibility=visibility, body_types=FACT_TYPES
        )
        cached = (t, person_index(person_id, found, priority, unkeyed))
        if cache is not None:
            cache.put((person_id, asked, t, key), cached)
    t, entries = cached
    lead = 1 if golden is not None and (not query.types or "Patient" in query.types) else 0
    total = len(entries) + lead
    if query.count == 0:
        return SearchPage(t, offset, [], [], total, False)
    start = offset  # position in the served order (the golden Patient first), without a cursor
    if after is not None:
        rtype, _, rid = after.partition("/")
        start = lead + bisect.bisect_right(entries, (rtype, rid), key=_TYPE_ID)
    window: list[StoredResource] = [golden] if lead and start == 0 and golden is not None else []
    first = max(0, start - lead)
    window += _served(tx, entries[first : first + query.count - len(window)], priority)
    cursor = f"{window[-1].resource_type}/{window[-1].id}" if window else after
    has_more = total > start + query.count
    return SearchPage(t, offset, window, [], total, has_more, cursor)


def key_facts(tx: Tx, vids: Sequence[int]) -> int:
    """Keep the same-fact keys of these versions (write transaction): later reads of the person parse nothing."""
    return fill_fact_keys(tx, vids, fact_key)
