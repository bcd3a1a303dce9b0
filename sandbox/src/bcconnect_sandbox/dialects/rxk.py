"""RXK's FHIR quirks: local code systems, retired verification codes, vendor extensions."""

from __future__ import annotations

from typing import Final

from bcconnect_sandbox import wire as c
from bcconnect_sandbox.dialects.fhir import Json

RXK_BASE: Final = "https://fhir.rxk.nhs.uk"
RETIRED_VERIFICATION_SYSTEM: Final = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus"
#: the retired kebab-case codes RXK still sends, by current code
RETIRED_VERIFICATION_CODES: Final = {
    "01": "number-present-and-verified",
    "02": "number-present-but-not-traced",
    "03": "trace-required",
    "05": "trace-needs-to-be-resolved",
}
_LOCAL_SYSTEMS: Final = {c.SNOMED_SYSTEM: "clinical", c.LOINC_SYSTEM: "lab", c.DMD_SYSTEM: "drug"}


def local_system(kind: str) -> str:
    """RXK's local code system for ``kind`` (clinical, lab, drug)."""
    return f"{RXK_BASE}/CodeSystem/local-{kind}"


def local_code(system: str, code: str) -> str:
    """RXK's local code for a standard code: a stable rewrite a ConceptMap can translate back.

    >>> local_code("http://snomed.info/sct", "44054006")
    'CL-44054006'
    """
    return {"clinical": "CL", "lab": "LB", "drug": "RX"}[_LOCAL_SYSTEMS[system]] + "-" + code


def rxk_quirks(resource: Json) -> Json:
    """Rewrite an RL4-style resource the way RXK sends it (a new dict; the input is not changed)."""
    out = _rewrite(resource)
    assert isinstance(out, dict)
    extensions = out.get("extension")
    vendor = [
        {"url": f"{RXK_BASE}/StructureDefinition/unity-record-source", "valueString": "UNITY"},
        {"url": f"{RXK_BASE}/StructureDefinition/audit-trail", "extension": [{"url": "site", "valueString": "RXK01"}]},
    ]
    out["extension"] = [*extensions, *vendor] if isinstance(extensions, list) else vendor
    return out


def _rewrite(value: object) -> object:
    if isinstance(value, list):
        return [_rewrite(v) for v in value]
    if not isinstance(value, dict):
        return value
    system = value.get("system")
    if isinstance(system, str) and system in _LOCAL_SYSTEMS and isinstance(value.get("code"), str):
        return {**value, "system": local_system(_LOCAL_SYSTEMS[system]), "code": local_code(system, str(value["code"]))}
    if system == c.NHS_NUMBER_VERIFICATION_SYSTEM and isinstance(value.get("code"), str):
        code = str(value["code"])
        return {"system": RETIRED_VERIFICATION_SYSTEM, "code": RETIRED_VERIFICATION_CODES.get(code, code)}
    return {k: _rewrite(v) for k, v in value.items()}
