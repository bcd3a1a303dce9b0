"""One fact recorded by two trusts appears once in a person's record, with both provenances.

Two resources of one person are the same fact when they come from different trusts and agree on what makes
the fact (a Condition's code and onset date, an AllergyIntolerance's code, an Observation's code, time and value,
a MedicationRequest's medication and date) and on their security labels. The first (by trust priority) is kept;
it gains the other trust's ODS tag in ``meta.tag`` and an :data:`ALSO_RECORDED_AS_EXTENSION` naming the other
resource, which stays readable on its own. Anything not listed here is never collapsed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
