"""A fixture record for black-box tests of our FHIR endpoint, and the handle on the served target.

The record holds what the server pack needs to judge: Patients with valid NHS numbers and verification status,
a patient with six Observations and a multi-day Encounter, a restricted (``R``) patient with address, telecom
and GP, and an objector (in the objection register) with a record of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from bcconnect.fhir.nhs_number import check_digit
from bcconnect.store import ResourceWrite

NHS = "https://fhir.nhs.uk/Id/nhs-number"
VERIFICATION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
VERIFICATION_CODES = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
MRN = "https://fhir.rl4.nhs.uk/Id/mrn"
LOINC = "http://loinc.org"


def nhs_number(n: int) -> str:
    """The n-th valid test NHS number (999 range)."""
    while True:
        first = f"999{n:06d}"
        digit = check_digit(first)
        if digit is not None:
            return f"{first}{digit}"
        n += 1


SMITH, BROWN, GREEN = nhs_number(11), nhs_number(22), nhs_number(33)


def _write(body: dict[str, Any], compartment: str | None = None) -> ResourceWrite:
    return ResourceWrite(body["resourceType"], body["id"], orjson.dumps(body), source="rl4", compartment=compartment)


def _patient(pid: str, family: str, given: str, nhs: str, born: str, **extra: Any) -> ResourceWrite:
    body = {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]},
        "identifier": [
            {
                "system": NHS,
                "value": nhs,
                "extension": [
                    {
                        "url": VERIFICATION,
                        "valueCodeableConcept": {"coding": [{"system": VERIFICATION_CODES, "code": "01"}]},
                    }
                ],
            },
            {"system": MRN, "value": f"MRN-{pid}"},
        ],
        "name": [{"family": family, "given": [given]}],
        "gender": "female",
        "birthDate": born,
        **extra,
    }
    return _write(body, pid)


def _observation(oid: str, pid: str, day: int) -> ResourceWrite:
    body = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "2345-7", "display": "Glucose [Moles/volume] in Serum"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": f"2024-01-{day:02d}T10:00:00Z",
        "valueQuantity": {"value": 5 + day / 10, "unit": "mmol/L", "system": "http://unitsofmeasure.org"},
        "note": [{"text": "Fasting sample, reported by the laboratory information system of the trust."}],
    }
    return _write(body, pid)


def fixture_record() -> list[ResourceWrite]:
    """The whole fixture record."""
    return [
        _write({"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Jones"}]}),
        _patient("p1", "Smith", "Ann", SMITH, "1970-03-15"),
        _patient(
            "p2",
            "Brown",
            "Beth",
            BROWN,
            "1980-07-01",
            meta={"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]},
            address=[{"line": ["1 High Street"], "city": "Walsall", "postalCode": "WS1 1AA"}],
            telecom=[{"system": "phone", "value": "01922 000000"}],
            generalPractitioner=[{"reference": "Practitioner/dr1"}],
        ),
        _patient("p3", "Green", "Cara", GREEN, "1990-11-30"),
        *[_observation(f"o{i}", "p1", i) for i in range(1, 25)],
        _observation("g1", "p3", 3),
        _write(
            {
                "resourceType": "Encounter",
                "id": "e1",
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                "subject": {"reference": "Patient/p1"},
                "period": {"start": "2024-03-01T10:00:00Z", "end": "2024-03-05T12:00:00Z"},
            },
            "p1",
        ),
        _write(
            {
                "resourceType": "Condition",
                "id": "c1",
                "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
            },
            "p1",
        ),
    ]


@dataclass(frozen=True)
class FhirTarget:
    """Our endpoint on loopback: its base URL, a valid token and the fixture people's NHS numbers."""

    base: str
    origin: str
    token: str
    objector: str
    restricted: str

    def options(self) -> dict[str, str]:
        return {"token": self.token, "objector": self.objector, "restricted": self.restricted, "rate": "0"}
