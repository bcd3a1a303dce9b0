"""The UK Core rules enforced on every produced resource (bcconnect.fhir.ukcore)."""

from __future__ import annotations

from typing import Any

import pytest

from bcconnect.fhir.constants import (
    NHS_NUMBER_SYSTEM,
    NHS_NUMBER_VERIFICATION_EXTENSION,
    NHS_NUMBER_VERIFICATION_SYSTEM,
    ODS_ORGANIZATION_SYSTEM,
)
from bcconnect.fhir.ukcore import normalise_verification_status, profile_for, ukcore_problems


def patient(nhs: str = "9990000018", status: str | None = "01", gp: str = "M92001") -> dict[str, Any]:
    """A minimal UK Core Patient."""
    ident: dict[str, Any] = {"system": NHS_NUMBER_SYSTEM, "value": nhs}
    if status is not None:
        ident["extension"] = [{"url": NHS_NUMBER_VERIFICATION_EXTENSION, "valueCodeableConcept": {
            "coding": [{"system": NHS_NUMBER_VERIFICATION_SYSTEM, "code": status}]}}]  # fmt: skip
    return {
        "resourceType": "Patient",
        "meta": {"profile": [profile_for("Patient")]},
        "identifier": [ident],
        "generalPractitioner": [{"identifier": {"system": ODS_ORGANIZATION_SYSTEM, "value": gp}}],
    }


def test_a_conforming_patient_has_no_problems() -> None:
    """Valid NHS number, status 01, ODS-coded GP, UK Core profile."""
    assert ukcore_problems(patient()) == []


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (patient(nhs="9990000019"), "Modulus 11"),
        (patient(nhs="999000001"), "Modulus 11"),
        (patient(status=None), "verification status"),
        (patient(status="number-present-and-verified"), "verification status"),
        (patient(gp="m92 001"), "ODS code"),
        ({**patient(), "meta": {}}, "UKCore-Patient"),
        (
            {"resourceType": "MedicationRequest", "meta": {"profile": [profile_for("MedicationRequest")]}},
            "substitution",
        ),
        ({"resourceType": "Encounter", "meta": {"profile": [profile_for("Encounter")]}}, "class"),
    ],
)
def test_breaking_a_rule_is_reported(resource: dict[str, Any], expected: str) -> None:
    """Each rule names the element and what it expected."""
    problems = ukcore_problems(resource)
    assert any(expected in p for p in problems), problems


def test_retired_verification_codes_normalise_to_england_codes() -> None:
    """The retired kebab-case codes map to 01–08; anything else is refused."""
    assert normalise_verification_status("trace-postponed") == "08"
    assert normalise_verification_status("05") == "05"
    with pytest.raises(ValueError, match="01–08"):
        normalise_verification_status("verified")
