"""Which source Patient a resource belongs to (its Patient compartment), from its own references."""

from __future__ import annotations

from typing import Any

#: where each clinical type points at its patient, first match wins (from the R4 Patient CompartmentDefinition)
_PATIENT_PATHS: dict[str, tuple[str, ...]] = {
    "AllergyIntolerance": ("patient",),
    "Appointment": ("participant.actor",),
    "Condition": ("subject",),
    "Consent": ("patient",),
    "DiagnosticReport": ("subject",),
    "Encounter": ("subject",),
    "EpisodeOfCare": ("patient",),
    "Flag": ("subject",),
    "MedicationRequest": ("subject",),
    "MedicationStatement": ("subject",),
    "Observation": ("subject",),
    "Procedure": ("subject",),
    "Provenance": ("patient",),
    "ServiceRequest": ("subject",),
}
_DEFAULT_PATHS = ("subject", "patient")


def _references(value: Any, path: list[str]) -> list[str]:
    if not path:
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            return [value["reference"]]
        return []
    if isinstance(value, list):
        return [ref for item in value for ref in _references(item, path)]
    if isinstance(value, dict):
        return _references(value.get(path[0]), path[1:])
    return []


def patient_compartment(resource: dict[str, Any]) -> str | None:
    """The id of the Patient this resource is about, or None (Organization, Practitioner …).

    >>> patient_compartment({"resourceType": "Patient", "id": "p1"})
    'p1'
    >>> patient_compartment({"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/p1"}})
    'p1'
    >>> patient_compartment({"resourceType": "Appointment", "id": "a1",
    ...     "participant": [{"actor": {"reference": "Location/l"}}, {"actor": {"reference": "Patient/p2"}}]})
    'p2'
    >>> patient_compartment({"resourceType": "Organization", "id": "o1"}) is None
    True
    """
    resource_type = resource.get("resourceType")
    if resource_type == "Patient":
        value = resource.get("id")
        return value if isinstance(value, str) else None
    for dotted in _PATIENT_PATHS.get(str(resource_type), _DEFAULT_PATHS):
        for ref in _references(resource, dotted.split(".")):
            kind, _, ident = ref.partition("/")
            if kind == "Patient" and ident:
                return ident
    return None
