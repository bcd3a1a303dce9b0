"""One fact recorded by two trusts appears once in a person's record, with both provenances.

Two resources of one person are the same fact when they come from different trusts and agree on what makes
the fact (a Condition's code and onset date, an AllergyIntolerance's code, an Observation's code, time and value,
a MedicationRequest's medication and date) and on their security labels. The first (by trust priority) is kept;
it gains the other trust's ODS tag in ``meta.tag`` and an :data:`ALSO_RECORDED_AS_EXTENSION` naming the other
resource, which stays readable on its own. Anything not listed here is never collapsed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

import orjson

from bcconnect.fhir.constants import BCCONNECT_BASE, SOURCE_ORG_TAG_SYSTEM
from bcconnect.store import StoredResource

#: on a kept resource: another trust's resource that records the same fact
ALSO_RECORDED_AS_EXTENSION: Final = BCCONNECT_BASE + "/StructureDefinition/also-recorded-as"


def _codes(concept: Any) -> str:
    codings = (concept or {}).get("coding") or () if isinstance(concept, dict) else ()
    return ",".join(sorted(f"{c.get('system')}|{c.get('code')}" for c in codings if c.get("code")))


def _day(value: Any) -> str:
    return str(value)[:10] if value else ""


_KEYS: Final[dict[str, Callable[[dict[str, Any]], str | None]]] = {
    "Condition": lambda r: f"{_codes(r.get('code'))}@{_day(r.get('onsetDateTime'))}" if _codes(r.get("code")) else None,
    "AllergyIntolerance": lambda r: _codes(r.get("code")) or None,
    "Observation": lambda r: (
        f"{_codes(r.get('code'))}@{r.get('effectiveDateTime')}={orjson.dumps(r.get('valueQuantity')).decode()}"
        if _codes(r.get("code")) and r.get("effectiveDateTime")
        else None
    ),
    "MedicationRequest": lambda r: (
        f"{_codes(r.get('medicationCodeableConcept'))}@{_day(r.get('authoredOn'))}"
        if _codes(r.get("medicationCodeableConcept"))
        else None
    ),
}


def _ods(resource: dict[str, Any]) -> str | None:
    for tag in (resource.get("meta") or {}).get("tag") or ():
        if tag.get("system") == SOURCE_ORG_TAG_SYSTEM:
            return str(tag.get("code"))
    return None


def collapse_same_facts(items: Sequence[StoredResource], priority: Sequence[str]) -> list[StoredResource]:
    """``items`` with cross-trust duplicates of one fact folded into the first (trust ``priority`` order)."""
    rank = {code: i for i, code in enumerate(priority)}
    parsed: list[tuple[StoredResource, dict[str, Any] | None]] = [
        (item, orjson.loads(item.body) if item.body is not None and item.resource_type in _KEYS else None)
        for item in items
    ]
    groups: dict[tuple[str, str, str], list[int]] = {}
    for index, (item, body) in enumerate(parsed):
        if body is None:
            continue
        key = _KEYS[item.resource_type](body)
        if key is not None:
            security = orjson.dumps((body.get("meta") or {}).get("security") or [], option=orjson.OPT_SORT_KEYS)
            groups.setdefault((item.resource_type, key, security.decode()), []).append(index)
    dropped: set[int] = set()
    replaced: dict[int, StoredResource] = {}
    for members in groups.values():
        trusts = {_ods(b) for _, b in (parsed[i] for i in members) if b is not None}
        if len(members) < 2 or len(trusts) < 2:
            continue  # one trust's own repeated entries are that trust's business, not a feed duplicate
        ordered = sorted(members, key=lambda i: (rank.get(_ods(parsed[i][1] or {}) or "", len(rank)), i))
        keep, others = ordered[0], ordered[1:]
        body = dict(parsed[keep][1] or {})
        meta = dict(body.get("meta") or {})
        tags = list(meta.get("tag") or ())
        extensions = list(body.get("extension") or ())
        for other in others:
            other_body = parsed[other][1] or {}
            ods = _ods(other_body)
            if ods and {"system": SOURCE_ORG_TAG_SYSTEM, "code": ods} not in tags:
                tags.append({"system": SOURCE_ORG_TAG_SYSTEM, "code": ods})
            ref = f"{parsed[other][0].resource_type}/{parsed[other][0].id}"
            extensions.append({"url": ALSO_RECORDED_AS_EXTENSION, "valueReference": {"reference": ref}})
            dropped.add(other)
        body["meta"] = {**meta, "tag": tags}
        body["extension"] = extensions
        replaced[keep] = replace(parsed[keep][0], body=orjson.dumps(body))
    return [replaced.get(i, item) for i, (item, _) in enumerate(parsed) if i not in dropped]


#: resource types that can be the same fact as another trust's resource
FACT_TYPES: Final = tuple(sorted(_KEYS))


def fact_key(resource_type: str, body: bytes) -> tuple[str | None, str]:
    """The key two trusts' resources share when they record the same fact (None: never collapsed), and the
    trust the resource came from (``""`` when untagged): exactly the grouping :func:`collapse_same_facts` uses."""
    if resource_type not in _KEYS:
        return None, ""
    parsed = orjson.loads(body)
    ods = _ods(parsed) or ""
    key = _KEYS[resource_type](parsed)
    if key is None:
        return None, ods
    security = orjson.dumps((parsed.get("meta") or {}).get("security") or [], option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(f"{resource_type}\n{key}\n{security.decode()}".encode()).hexdigest()
    return digest, ods


def fold_others(
    kept: StoredResource, others: Sequence[tuple[int, str, str, str]], own_ods: str, priority: Sequence[str]
) -> StoredResource:
    """``kept`` carrying the other trusts' tags and an :data:`ALSO_RECORDED_AS_EXTENSION` per other resource
    of the same fact (``others``: version key, type, id, trust); as it is when every one is from its own trust.
    """
    if kept.body is None or not others or all(ods == own_ods for _, _, _, ods in others):
        return kept
    rank: Mapping[str, int] = {code: i for i, code in enumerate(priority)}
    ordered = sorted(others, key=lambda o: (rank.get(o[3], len(rank)), o[0]))
    body = orjson.loads(kept.body)
    meta = dict(body.get("meta") or {})
    tags = list(meta.get("tag") or ())
    extensions = list(body.get("extension") or ())
    for _, rtype, rid, ods in ordered:
        if ods and {"system": SOURCE_ORG_TAG_SYSTEM, "code": ods} not in tags:
            tags.append({"system": SOURCE_ORG_TAG_SYSTEM, "code": ods})
        extensions.append({"url": ALSO_RECORDED_AS_EXTENSION, "valueReference": {"reference": f"{rtype}/{rid}"}})
    body["meta"] = {**meta, "tag": tags}
    body["extension"] = extensions
    return replace(kept, body=orjson.dumps(body))


def collapse_plan(
    rows: Sequence[tuple[str | None, str]], priority: Sequence[str], *, order: Sequence[int] | None = None
) -> tuple[set[int], dict[int, list[int]]]:
    """Which rows a collapse drops, and for each row kept in place of others, the rows it stands for (in the order
    its extensions name them), from ``(fact key, trust)`` per row in record order: the grouping and choice of
    :func:`collapse_same_facts`, with nothing parsed.

    ``order``: each row's place in the record order when the rows come in another (the version key, for rows read
    in no particular order: one fact key is one resource type, and within a type the record is in version order).
    """
    rank = {code: i for i, code in enumerate(priority)}
    first: dict[str, int] = {}
    repeated: dict[str, list[int]] = {}  # only keys met twice or more: most of a record is one row per key
    for index, (key, _) in enumerate(rows):
        if key is not None:
            met = first.setdefault(key, index)
            if met != index:
                repeated.setdefault(key, [met]).append(index)
    dropped: set[int] = set()
    folds: dict[int, list[int]] = {}
    place = order if order is not None else range(len(rows))
    for members in repeated.values():
        if len({rows[i][1] for i in members}) < 2:
            continue  # one trust's own repeated entries are that trust's business, not a feed duplicate
        ordered = sorted(members, key=lambda i: (rank.get(rows[i][1], len(rank)), place[i]))
        keep, others = ordered[0], ordered[1:]
        folds[keep] = others
        dropped.update(others)
    return dropped, folds


def collapse_keyed(
    rows: Sequence[tuple[StoredResource, str | None, str]], priority: Sequence[str]
) -> list[StoredResource]:
    """:func:`collapse_same_facts` from keys already known (``(resource, fact key, trust)`` per row, in order):
    the same answer with no JSON parsed but for the rows kept in place of others."""
    dropped, folds = collapse_plan([(key, ods) for _, key, ods in rows], priority)
    out = []
    for index, (item, _, ods) in enumerate(rows):
        if index in dropped:
            continue
        others = folds.get(index)
        if others:
            folded = [(i, rows[i][0].resource_type, rows[i][0].id, rows[i][2]) for i in others]
            item = fold_others(item, folded, ods, priority)
        out.append(item)
    return out
