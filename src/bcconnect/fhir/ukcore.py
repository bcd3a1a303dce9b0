"""The UK Core R4 rules bcconnect enforces on every resource it produces (beyond the base R4 model).

These are the rules the shared record relies on (DOMAIN.md): NHS number system and Modulus 11 check, the
England verification status codes, ODS identifiers, UK Core ``meta.profile`` canonicals and the elements UK
Core makes mandatory that base R4 does not (``Encounter.class`` is already 1..1 in R4; AllergyIntolerance.code,
MedicationRequest.substitution are UK Core's).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from bcconnect.fhir import nhs_number
from bcconnect.fhir.constants import (
    MAPPING_FLAG_SYSTEM,
    NHS_NUMBER_SYSTEM,
    NHS_NUMBER_VERIFICATION_EXTENSION,
    NHS_NUMBER_VERIFICATION_SYSTEM,
    NON_UK_TERMINOLOGY,
    ODS_ORGANIZATION_SYSTEM,
    ODS_SITE_SYSTEM,
    UKCORE_PROFILE_BASE,
)

#: The retired UK Core STU1 code system whose kebab-case codes some systems still send.
RETIRED_VERIFICATION_SYSTEM: Final = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus"

#: Retired kebab-case verification codes and the England code each became.
RETIRED_VERIFICATION_CODES: Final = {
    "number-present-and-verified": "01",
    "number-present-but-not-traced": "02",
    "trace-required": "03",
    "trace-attempted-no-match-or-multiple-match-found": "04",
    "trace-needs-to-be-resolved": "05",
    "trace-in-progress": "06",
    "number-not-present-and-trace-not-required": "07",
    "trace-postponed": "08",
}
VERIFICATION_DISPLAY: Final = {
    "01": "Number present and verified",
    "02": "Number present but not traced",
    "03": "Trace required",
    "04": "Trace attempted - No match or multiple match found",
    "05": "Trace needs to be resolved - (NHS Number or patient detail conflict)",
    "06": "Trace in progress",
    "07": "Number not present and trace not required",
    "08": "Trace postponed (baby under six weeks old)",
}

_ODS_CODE = re.compile(r"[A-Z0-9]{3,10}")


def normalise_verification_status(code: str) -> str:
    """An England verification code ``01``–``08`` for any spelling systems send; ValueError otherwise.

    >>> normalise_verification_status("trace-required"), normalise_verification_status("1")
    ('03', '01')
    """
    code = code.strip()
    if code in RETIRED_VERIFICATION_CODES:
        return RETIRED_VERIFICATION_CODES[code]
    if code.isdigit() and 1 <= int(code) <= 8:
        return f"{int(code):02d}"
    raise ValueError("expected an NHS number verification status 01–08 or a retired UK Core code")


#: Resource types UK Core R4 profiles (others, e.g. Consent, carry the base R4 profile).
UKCORE_PROFILED_TYPES: Final = frozenset(
    {
        "AllergyIntolerance", "Appointment", "Composition", "Condition", "DiagnosticReport", "Encounter",
        "EpisodeOfCare", "FamilyMemberHistory", "HealthcareService", "Immunization", "List", "Location",
        "Medication", "MedicationAdministration", "MedicationDispense", "MedicationRequest",
        "MedicationStatement", "Observation", "Organization", "Patient", "Practitioner", "PractitionerRole",
        "Procedure", "RelatedPerson", "Schedule", "ServiceRequest", "Slot", "Specimen",
    }
)  # fmt: skip
BASE_PROFILE_BASE: Final = "http://hl7.org/fhir/StructureDefinition/"


def profile_for(resource_type: str) -> str:
    """The UK Core canonical profile of a resource type (the base R4 profile when UK Core has none).

    >>> profile_for("Patient")
    'https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient'
    >>> profile_for("Consent")
    'http://hl7.org/fhir/StructureDefinition/Consent'
    """
    if resource_type in UKCORE_PROFILED_TYPES:
        return UKCORE_PROFILE_BASE + resource_type
    return BASE_PROFILE_BASE + resource_type


def _identifier_problems(identifiers: Any, where: str, out: list[str]) -> None:
    if not isinstance(identifiers, list):
        return
    for i, ident in enumerate(identifiers):
        if not isinstance(ident, dict):
            continue
        system = ident.get("system")
        value = ident.get("value")
        if system == NHS_NUMBER_SYSTEM:
            if not isinstance(value, str) or not nhs_number.is_valid(value) or len(value) != 10:
                out.append(f"{where}[{i}].value: NHS number must be 10 digits passing Modulus 11")
        elif system in (ODS_ORGANIZATION_SYSTEM, ODS_SITE_SYSTEM) and (
            not isinstance(value, str) or not _ODS_CODE.fullmatch(value)
        ):
            out.append(f"{where}[{i}].value: ODS code must be 3–10 upper-case letters or digits")


def _patient(res: dict[str, Any], out: list[str]) -> None:
    idents = res.get("identifier") or []
    _identifier_problems(idents, "Patient.identifier", out)
    for i, ident in enumerate(idents):
        if ident.get("system") != NHS_NUMBER_SYSTEM:
            continue
        codes = [
            coding.get("code")
            for ext in ident.get("extension") or ()
            if ext.get("url") == NHS_NUMBER_VERIFICATION_EXTENSION
            for coding in (ext.get("valueCodeableConcept") or {}).get("coding") or ()
            if coding.get("system") == NHS_NUMBER_VERIFICATION_SYSTEM
        ]
        if len(codes) != 1 or codes[0] not in VERIFICATION_DISPLAY:
            out.append(
                f"Patient.identifier[{i}].extension: NHS number needs one verification status 01–08 in "
                f"{NHS_NUMBER_VERIFICATION_SYSTEM}"
            )


def _require(element: str) -> Callable[[dict[str, Any], list[str]], None]:
    def check(res: dict[str, Any], out: list[str]) -> None:
        if not res.get(element):
            out.append(f"{res.get('resourceType')}.{element}: required by UK Core")

    return check


def _organization(res: dict[str, Any], out: list[str]) -> None:
    _identifier_problems(res.get("identifier"), "Organization.identifier", out)


_CHECKS: Final[dict[str, tuple[Callable[[dict[str, Any], list[str]], None], ...]]] = {
    "Patient": (_patient,),
    "Encounter": (_require("class"),),
    "AllergyIntolerance": (_require("code"),),
    "MedicationRequest": (_require("substitution"),),
    "Organization": (_organization,),
}


def ukcore_problems(resource: dict[str, Any]) -> list[str]:
    """Every UK Core rule ``resource`` breaks (empty when it conforms to the rules we enforce).

    >>> meta = {"profile": [profile_for("AllergyIntolerance")]}
    >>> ukcore_problems({"resourceType": "AllergyIntolerance", "meta": meta})
    ['AllergyIntolerance.code: required by UK Core']
    """
    out: list[str] = []
    rtype = resource.get("resourceType", "")
    meta = resource.get("meta") or {}
    profiles = meta.get("profile") or ()
    flagged = any(
        isinstance(t, dict) and t.get("system") == MAPPING_FLAG_SYSTEM and t.get("code") == NON_UK_TERMINOLOGY
        for t in meta.get("tag") or ()
    )
    # a resource coded only in another country's terminology is kept, flagged, and claims the base profile
    expected = BASE_PROFILE_BASE + rtype if flagged else profile_for(rtype)
    if not any(isinstance(p, str) and p.startswith(expected) for p in profiles):
        out.append(f"{rtype}.meta.profile: expected the {'base' if flagged else 'UK Core'} profile {expected}")
    for check in () if flagged else _CHECKS.get(rtype, ()):
        check(resource, out)
    _reference_ods_problems(resource, rtype, out)
    return out


def _reference_ods_problems(resource: dict[str, Any], rtype: str, out: list[str]) -> None:
    """Top-level references by ODS code (GP, provider, requester …) must carry a well-formed code."""
    for key, value in resource.items():
        items = value if isinstance(value, list) else (value,)
        for i, item in enumerate(items):
            if isinstance(item, dict):
                ident = item.get("identifier")
                if isinstance(ident, dict) and ident.get("system") in (ODS_ORGANIZATION_SYSTEM, ODS_SITE_SYSTEM):
                    where = f"{rtype}.{key}[{i}].identifier" if isinstance(value, list) else f"{rtype}.{key}.identifier"
                    _identifier_problems([ident], where, out)
