"""FHIR helpers the packs share: bundle walking, OperationOutcome shape, and UK Core rules for one resource.

Only the shared FHIR constants and NHS number rules come from the engine; everything else here is written
from the specifications so the runner judges any server the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

from bcconnect.conformance._context import Answer, Context, require
from bcconnect.fhir.constants import (
    NHS_NUMBER_SYSTEM,
    NHS_NUMBER_VERIFICATION_EXTENSION,
    NHS_NUMBER_VERIFICATION_SYSTEM,
    UKCORE_PROFILE_BASE,
)
from bcconnect.fhir.nhs_number import is_valid

R4 = "https://hl7.org/fhir/R4"
UKCORE = "https://simplifier.net/hl7fhirukcorer4"
#: the retired (kebab-case) NHS number verification code system some systems still send
RETIRED_VERIFICATION_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus"
VERIFICATION_CODES = frozenset({"01", "02", "03", "04", "05", "06", "07", "08"})

#: elements with cardinality 1..* in the R4 base resources (what every conformant instance carries)
REQUIRED_ELEMENTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Observation": (("status",), ("code",)),
    "Condition": (("subject",),),
    "Encounter": (("status",), ("class",)),
    "MedicationRequest": (("status",), ("intent",), ("medicationCodeableConcept", "medicationReference"), ("subject",)),
    "MedicationStatement": (("status",), ("medicationCodeableConcept", "medicationReference"), ("subject",)),
    "AllergyIntolerance": (("patient",),),
    "Procedure": (("status",), ("subject",)),
    "DiagnosticReport": (("status",), ("code",)),
    "ServiceRequest": (("status",), ("intent",), ("subject",)),
    "Appointment": (("status",), ("participant",)),
    "EpisodeOfCare": (("status",), ("patient",)),
    "Consent": (("status",), ("scope",), ("category",)),
    "Provenance": (("target",), ("recorded",), ("agent",)),
    "Flag": (("status",), ("code",), ("subject",)),
    "Immunization": (("status",), ("vaccineCode",), ("patient",)),
}
#: every R4 resource type (to find types a server does not list)
SOME_R4_TYPES = (
    "Account",
    "ActivityDefinition",
    "Basic",
    "BodyStructure",
    "ChargeItem",
    "Claim",
    "Contract",
    "Coverage",
    "DeviceMetric",
    "EffectEvidenceSynthesis",
    "ImmunizationRecommendation",
    "Invoice",
    "Library",
    "Measure",
    "MolecularSequence",
    "NutritionOrder",
    "ResearchStudy",
    "RiskEvidenceSynthesis",
    "SubstanceSpecification",
    "VisionPrescription",
)


def query(params: Iterable[tuple[str, str]]) -> str:
    """A query string (``?a=b&c=d``) for ``params``, or nothing."""
    text = urlencode(list(params))
    return f"?{text}" if text else ""


def entries(bundle: dict[str, Any], mode: str | None = "match") -> list[dict[str, Any]]:
    """Resources of a Bundle's entries (``mode``: only this search mode; entries without one count as match)."""
    found = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        entry_mode = (entry.get("search") or {}).get("mode", "match")
        if mode is None or entry_mode == mode:
            found.append(resource)
    return found


def keys(resources: Iterable[dict[str, Any]]) -> list[str]:
    """``Type/id`` of each resource."""
    return [f"{r.get('resourceType')}/{r.get('id')}" for r in resources]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    """The URL of a Bundle link by relation."""
    for item in bundle.get("link") or []:
        if item.get("relation") == relation:
            url = item.get("url")
            return url if isinstance(url, str) else None
    return None


def is_operation_outcome(answer: Answer) -> tuple[bool, str]:
    """Whether the answer's body is an OperationOutcome with at least one issue having severity and code."""
    body = answer.maybe_json()
    if not isinstance(body, dict):
        return False, "the body is not JSON"
    if body.get("resourceType") != "OperationOutcome":
        return False, f"the body is a {body.get('resourceType')!r}, not an OperationOutcome"
    issues = body.get("issue") or []
    if not issues or not all(isinstance(i, dict) and i.get("severity") and i.get("code") for i in issues):
        return False, "the OperationOutcome has no issue with both severity and code"
    return True, f"OperationOutcome ({issues[0].get('severity')}/{issues[0].get('code')})"


async def search(ctx: Context, resource_type: str, params: Iterable[tuple[str, str]], **kwargs: Any) -> dict[str, Any]:
    """A search that must succeed: 200 and a searchset Bundle (else :class:`Failed`)."""
    answer = await ctx.get(f"{resource_type}{query(params)}", **kwargs)
    require(answer.status == 200, f"GET {answer.url} answered HTTP {answer.status}, expected 200")
    bundle = answer.json()
    require(
        isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle" and bundle.get("type") == "searchset",
        f"GET {answer.url} did not answer a searchset Bundle",
    )
    return bundle  # type: ignore[no-any-return]


def walk_values(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) pair under ``value`` (dicts and lists walked depth first)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk_values(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_values(v, f"{path}[{i}]")
    else:
        yield path, value


def identifier_problems(resource: dict[str, Any]) -> list[str]:
    """Identifiers without an absolute system URI (UK Core: every identifier names its system)."""
    problems = []
    where = f"{resource.get('resourceType')}/{resource.get('id')}"
    for n, ident in enumerate(resource.get("identifier") or []):
        system = ident.get("system") if isinstance(ident, dict) else None
        if not isinstance(system, str) or not system.startswith(("http://", "https://", "urn:")):
            problems.append(f"{where}.identifier[{n}] has no absolute system (system={system!r})")
    return problems


def nhs_numbers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The NHS number identifiers of a resource."""
    return [i for i in resource.get("identifier") or [] if isinstance(i, dict) and i.get("system") == NHS_NUMBER_SYSTEM]


def nhs_number_problems(resource: dict[str, Any]) -> list[str]:
    """NHS numbers that fail the Modulus 11 check."""
    where = f"{resource.get('resourceType')}/{resource.get('id')}"
    return [
        f"{where}: NHS number {i.get('value')!r} fails the Modulus 11 check"
        for i in nhs_numbers(resource)
        if not is_valid(str(i.get("value") or ""))
    ]


def verification_problems(resource: dict[str, Any], *, allow_retired: bool = False) -> list[str]:
    """NHS numbers without the UK Core verification-status extension, or with a code outside its value set."""
    where = f"{resource.get('resourceType')}/{resource.get('id')}"
    problems = []
    for ident in nhs_numbers(resource):
        ext = [e for e in ident.get("extension") or [] if e.get("url") == NHS_NUMBER_VERIFICATION_EXTENSION]
        if not ext:
            problems.append(f"{where}: NHS number {ident.get('value')} has no verification status extension")
            continue
        codings = (ext[0].get("valueCodeableConcept") or {}).get("coding") or []
        good = [
            c
            for c in codings
            if c.get("system") == NHS_NUMBER_VERIFICATION_SYSTEM and c.get("code") in VERIFICATION_CODES
        ]
        retired = [c for c in codings if c.get("system") == RETIRED_VERIFICATION_SYSTEM]
        if not good and not (allow_retired and retired):
            shown = [(c.get("system"), c.get("code")) for c in codings]
            problems.append(f"{where}: verification status {shown} is not a code of {NHS_NUMBER_VERIFICATION_SYSTEM}")
    return problems


def required_element_problems(resource: dict[str, Any]) -> list[str]:
    """R4 elements of cardinality 1..* that are missing."""
    rtype = str(resource.get("resourceType"))
    where = f"{rtype}/{resource.get('id')}"
    problems = []
    if not resource.get("id"):
        problems.append(f"a {rtype} has no id")
    for alternatives in REQUIRED_ELEMENTS.get(rtype, ()):
        if not any(resource.get(name) not in (None, "", []) for name in alternatives):
            problems.append(f"{where} lacks required element {' or '.join(alternatives)}")
    return problems


def profile_problems(resource: dict[str, Any]) -> list[str]:
    """UK Core profile claims (``meta.profile``) that name another resource type's profile."""
    rtype = str(resource.get("resourceType"))
    where = f"{rtype}/{resource.get('id')}"
    problems = []
    for profile in (resource.get("meta") or {}).get("profile") or []:
        if isinstance(profile, str) and profile.startswith(UKCORE_PROFILE_BASE):
            claimed = profile.removeprefix(UKCORE_PROFILE_BASE).split("|")[0]
            # UK Core names specialisations after their base type (UKCore-Observation-Lab, …)
            if claimed != rtype and not claimed.startswith(f"{rtype}-"):
                problems.append(f"{where} claims profile {profile}, which profiles {claimed}, not {rtype}")
    return problems
