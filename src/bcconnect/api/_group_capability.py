"""The CapabilityStatement's entry for Group (cohorts; the handlers are in :mod:`bcconnect.api._cohort_ops`)."""

from __future__ import annotations

from typing import Any

BASE = "https://bcconnect.nhs.uk"
#: Group has no ``name`` search parameter in R4: ours matches Group.name as a FHIR string parameter
GROUP_NAME_PARAMETER = f"{BASE}/SearchParameter/Group-name"
RECOMPUTE_DEFINITION = f"{BASE}/OperationDefinition/group-recompute"
#: the CapabilityStatement's entry for Group
GROUP_CAPABILITY: dict[str, Any] = {
    "type": "Group",
    "profile": "http://hl7.org/fhir/StructureDefinition/Group",
    "documentation": (
        "Population cohorts (definitions in docs/cohorts.md), computed over the person-centred record; members "
        "are golden Patients, without anyone under the national data opt-out or objecting. user/ and system/ "
        "scopes see members; a patient/ token sees the Group without member. Search results omit member "
        "(SUBSETTED): read the Group for its members."
    ),
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "versioning": "versioned",
    "readHistory": False,
    "updateCreate": False,
    "conditionalCreate": False,
    "conditionalRead": "not-supported",
    "conditionalUpdate": False,
    "conditionalDelete": "not-supported",
    "searchInclude": [],
    "searchRevInclude": [],
    "searchParam": [
        {"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id", "type": "token"},
        {"name": "name", "definition": GROUP_NAME_PARAMETER, "type": "string"},
        {"name": "identifier", "definition": "http://hl7.org/fhir/SearchParameter/Group-identifier", "type": "token"},
    ],
    "operation": [{"name": "recompute", "definition": RECOMPUTE_DEFINITION}],
}
