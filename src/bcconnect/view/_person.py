"""Person-centred reading: golden Patients, references re-pointed to them, golden ids expanded for search.

A golden Patient (``Patient/<person id>``) is composed on read from the person's current source Patients, so a
merge, an unmerge or a steward's decision shows at once and nothing is ever rewritten in the store. Clinical
resources are served with their Patient references pointing at the golden Patient; the original source
reference is kept on the Reference in the :data:`SOURCE_REFERENCE_EXTENSION` extension.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

import orjson

from bcconnect.fhir.constants import BCCONNECT_BASE
from bcconnect.identity import Rules, compose_golden, is_person, person_patients, persons_of
from bcconnect.store import EverythingQuery, SearchPage, StoredResource, Tx, Visibility, everything, read_current
from bcconnect.view._dedupe import collapse_same_facts

#: extension on a re-pointed Reference: the source Patient it pointed at as stored
SOURCE_REFERENCE_EXTENSION: Final = BCCONNECT_BASE + "/StructureDefinition/source-reference"
#: search parameters whose values may name a (golden) Patient
PATIENT_PARAMS: Final = frozenset({"patient", "subject", "subject:Patient", "patient:Patient", "beneficiary"})


Screen = Callable[[list[StoredResource]], list[StoredResource]]
#: rows read per store call when gathering a person's $everything
_GATHER = 500


def golden_patient(tx: Tx, person_id: str, rules: Rules, *, screen: Screen | None = None) -> StoredResource | None:
    """The golden Patient of a person as a stored-like version, or None when it is not a person.

    It is composed only from the source Patients ``screen`` lets through (objection, restriction, sensitivity).
    Its version is the newest logical time ``t`` among its sources, so it changes (and its ETag with it)
    whenever any source Patient changes.
    """
    if not is_person(tx, person_id):
        return None
    sources = [read_current(tx, "Patient", pid) for pid in person_patients(tx, person_id)]
    current = [s for s in sources if s is not None and not s.deleted and s.body is not None]
    if screen is not None:
        current = screen(current)
    if not current:
        return None
    bodies = [orjson.loads(s.body) for s in current if s.body is not None]
    golden = compose_golden(person_id, bodies, rules)
    newest = max(current, key=lambda s: (s.last_updated, s.t))
    t = max(s.t for s in current)
    golden["meta"]["versionId"] = str(t)
    golden["meta"]["lastUpdated"] = newest.last_updated
    body = orjson.dumps(golden)
    return StoredResource("Patient", person_id, t, newest.last_updated, False, body, t, person_id)


def expand_patient_params(tx: Tx, params: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Search parameters with every golden id replaced by the person's source Patients (OR-joined).

    ``patient=<golden>`` becomes ``patient=Patient/a,Patient/b,…`` so one store search spans every trust.
    """
    out = []
    for name, value in params:
        if name not in PATIENT_PARAMS:
            out.append((name, value))
            continue
        parts: list[str] = []
        for item in value.split(","):
            ident = item.strip().removeprefix("Patient/")
            sources = person_patients(tx, ident) if ident and "/" not in ident else []
            if sources:
                parts.extend(f"Patient/{s}" for s in sources)
            else:
                parts.append(item)
        out.append((name, ",".join(parts)))
    return out


def _references(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref.startswith("Patient/"):
            found.add(ref[8:])
        for value in node.values():
            _references(value, found)
    elif isinstance(node, list):
        for value in node:
            _references(value, found)


def _repoint(node: Any, person_of: Mapping[str, str]) -> Any:
    if isinstance(node, list):
        return [_repoint(v, person_of) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _repoint(v, person_of) for k, v in node.items()}
    ref = node.get("reference")
    if isinstance(ref, str) and ref.startswith("Patient/") and ref[8:] in person_of:
        out["reference"] = f"Patient/{person_of[ref[8:]]}"
        out["extension"] = [
            *node.get("extension", ()),
            {"url": SOURCE_REFERENCE_EXTENSION, "valueReference": {"reference": ref}},
        ]
    return out


def person_centred(tx: Tx, resources: Iterable[StoredResource]) -> list[StoredResource]:
    """Resources as the view serves them: Patient references re-pointed to golden Patients; a source Patient
    carries a ``link`` (type ``refer``) to its golden Patient."""
    items = list(resources)
    parsed: list[dict[str, Any] | None] = []
    wanted: set[str] = set()
    for item in items:
        body = orjson.loads(item.body) if item.body is not None else None
        parsed.append(body)
        if body is not None:
            _references(body, wanted)
            if item.resource_type == "Patient":
                wanted.add(item.id)
    person_of = persons_of(tx, wanted) if wanted else {}
    out = []
    for item, body in zip(items, parsed, strict=True):
        if body is None or (not person_of):
            out.append(item)
            continue
        served = _repoint(body, person_of)
        if item.resource_type == "Patient" and item.id in person_of and item.id != person_of[item.id]:
            served["link"] = [
                *(link for link in body.get("link", ()) if link.get("type") != "refer"),
                {"other": {"reference": f"Patient/{person_of[item.id]}"}, "type": "refer"},
            ]
        out.append(replace(item, body=orjson.dumps(served)) if served != body else item)
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
    visibility: Visibility,
) -> SearchPage:
    """``$everything`` of a golden Patient: the compartments of all its source Patients at one logical time.

    The golden Patient comes first, then every resource of every source in a stable order (type, id), so
    offsets of later pages stay valid while the snapshot ``t`` is pinned. A fact two trusts both sent appears
    once (see :mod:`bcconnect.view._dedupe`).
    """
    collected: dict[tuple[str, str], StoredResource] = {}
    t = at
    for source in person_patients(tx, person_id):
        step = 0
        while True:
            page = everything(
                tx, replace(query, patient_id=source, count=_GATHER), at=t, offset=step, visibility=visibility
            )
            t = page.t
            for item in page.matches:
                collected.setdefault((item.resource_type, item.id), item)
            if not page.has_more:
                break
            step += len(page.matches)
    # one fact sent by two trusts is shown once, carrying both trusts' tags
    ordered = sorted(collapse_same_facts(list(collected.values()), priority), key=lambda r: (r.resource_type, r.id))
    if golden is not None and (not query.types or "Patient" in query.types):
        ordered.insert(0, golden)
    snapshot = t if t is not None else 0
    if query.count == 0:
        return SearchPage(snapshot, offset, [], [], len(ordered), False)
    window = ordered[offset : offset + query.count]
    return SearchPage(snapshot, offset, window, [], len(ordered), len(ordered) > offset + query.count)
