"""The golden Patient of a person, composed from its source Patients by survivorship rules.

Survivorship: sources with a verified NHS number first, then the configured trust priority
(``[survivorship] source_priority``), then the most recently updated. Each element is taken from the first
source that has it; identifiers are the union of every source's (plus the person id); disagreements on date of
birth, sex and death are flagged with an extension instead of being silently resolved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from bcconnect.fhir.constants import BCCONNECT_BASE, PERSON_ID_SYSTEM, SOURCE_ORG_TAG_SYSTEM
from bcconnect.identity._normalise import demographics
from bcconnect.identity._rules import Rules

#: extension on the golden Patient naming an element whose sources disagree (valueString: the element)
CONFLICT_EXTENSION: Final = BCCONNECT_BASE + "/StructureDefinition/identity-conflict"
#: meta.tag marking a golden (person-level) Patient
GOLDEN_TAG: Final = {"system": BCCONNECT_BASE + "/CodeSystem/record-kind", "code": "golden"}
_TAKEN: Final = ("name", "telecom", "gender", "birthDate", "address", "generalPractitioner", "maritalStatus",
                 "communication", "multipleBirthBoolean", "multipleBirthInteger", "contact")  # fmt: skip


def _ods(patient: Mapping[str, Any]) -> str | None:
    for tag in (patient.get("meta") or {}).get("tag") or ():
        if tag.get("system") == SOURCE_ORG_TAG_SYSTEM:
            return str(tag.get("code"))
    return None


def survivorship_order(sources: Sequence[Mapping[str, Any]], rules: Rules) -> list[Mapping[str, Any]]:
    """Sources best first: verified NHS number, then trust priority, then most recently updated."""
    priority = {code: i for i, code in enumerate(rules.source_priority)}

    def key(p: Mapping[str, Any]) -> tuple[int, int, str]:
        verified = demographics(p).nhs_verified
        updated = str((p.get("meta") or {}).get("lastUpdated") or "")
        return (0 if verified else 1, priority.get(_ods(p) or "", len(priority)), _inverted(updated))

    return sorted(sources, key=key)


def _inverted(text: str) -> str:
    # newest first inside one sort key: invert each character of the ISO instant
    return "".join(chr(0x10FFFF - ord(c)) for c in text)


def _deceased(p: Mapping[str, Any]) -> str | None:
    if p.get("deceasedDateTime"):
        return str(p["deceasedDateTime"])[:10]
    if p.get("deceasedBoolean") is True:
        return "yes"
    return None


def compose_golden(person_id: str, sources: Sequence[Mapping[str, Any]], rules: Rules) -> dict[str, Any]:
    """The golden Patient ``Patient/<person_id>`` from the person's current source Patients."""
    ordered = survivorship_order([s for s in sources if s.get("resourceType") == "Patient"], rules)
    golden: dict[str, Any] = {
        "resourceType": "Patient",
        "id": person_id,
        "meta": {"tag": [dict(GOLDEN_TAG)]},
        "identifier": [{"system": PERSON_ID_SYSTEM, "value": person_id}],
    }
    seen = {(PERSON_ID_SYSTEM, person_id)}
    for source in ordered:
        for ident in source.get("identifier") or ():
            key = (ident.get("system"), ident.get("value"))
            if key not in seen:
                seen.add(key)
                golden["identifier"].append(dict(ident))
    for element in _TAKEN:
        value = next((s[element] for s in ordered if s.get(element) not in (None, [], "")), None)
        if value is not None:
            golden[element] = value
    deaths = [d for d in (_deceased(s) for s in ordered) if d is not None]
    best_death = next((s for s in ordered if _deceased(s) is not None), None)
    if best_death is not None:
        for element in ("deceasedDateTime", "deceasedBoolean"):
            if element in best_death:
                golden[element] = best_death[element]
    conflicts = []
    for element, values in (
        ("birthDate", {str(s["birthDate"]) for s in ordered if s.get("birthDate")}),
        ("gender", {str(s["gender"]) for s in ordered if s.get("gender") not in (None, "unknown")}),
        ("deceased", set(deaths) | ({"alive"} if deaths and len(deaths) < len(ordered) else set())),
    ):
        if len(values) > 1:
            conflicts.append(element)
    if conflicts:
        golden["extension"] = [{"url": CONFLICT_EXTENSION, "valueString": c} for c in conflicts]
    security = [sec for s in ordered for sec in (s.get("meta") or {}).get("security") or ()]
    if security:
        golden["meta"]["security"] = list({(x.get("system"), x.get("code")): x for x in security}.values())
    golden["link"] = [{"other": {"reference": f"Patient/{s['id']}"}, "type": "seealso"} for s in ordered]
    return golden


def conflicts_of(golden: Mapping[str, Any]) -> list[str]:
    """The elements a golden Patient flags as conflicting between its sources."""
    return [str(e.get("valueString")) for e in golden.get("extension") or () if e.get("url") == CONFLICT_EXTENSION]
