"""A store holding one person known to all four trusts, linked by the patient index."""

from __future__ import annotations

from typing import Any

import orjson

from bcconnect.fhir.constants import (
    NHS_NUMBER_SYSTEM,
    NHS_NUMBER_VERIFICATION_EXTENSION,
    NHS_NUMBER_VERIFICATION_SYSTEM,
    SOURCE_ORG_TAG_SYSTEM,
    mrn_system,
)

TRUSTS = ("RL4", "RBK", "RNA", "RXK")


def source_patient(
    ods: str, *, nhs: str = "9990000018", given: str = "Margaret", birth: str = "1950-03-14"
) -> dict[str, Any]:
    """The person's Patient as one trust's mapping produces it."""
    return {
        "resourceType": "Patient",
        "id": f"{ods.lower()}-p1",
        "meta": {
            "tag": [{"system": SOURCE_ORG_TAG_SYSTEM, "code": ods}],
            "source": f"https://fhir.{ods.lower()}.nhs.uk/Patient/1",
        },
        "identifier": [
            {
                "system": NHS_NUMBER_SYSTEM,
                "value": nhs,
                "extension": [
                    {
                        "url": NHS_NUMBER_VERIFICATION_EXTENSION,
                        "valueCodeableConcept": {"coding": [{"system": NHS_NUMBER_VERIFICATION_SYSTEM, "code": "01"}]},
                    }
                ],
            },
            {"system": mrn_system(ods), "value": f"{ods}001"},
        ],
        "name": [{"family": "Cartwright", "given": [given]}],
        "gender": "female",
        "birthDate": birth,
        "address": [{"postalCode": "WV10 1AB"}],
    }


CODES = {"RL4": "44054006", "RBK": "38341003", "RNA": "195967001", "RXK": "13645005"}


def condition(ods: str, patient_id: str, code: str | None = None) -> dict[str, Any]:
    """A Condition recorded at one trust for its source Patient (a different one per trust by default)."""
    return {
        "resourceType": "Condition",
        "id": f"{ods.lower()}-c1",
        "meta": {
            "tag": [{"system": SOURCE_ORG_TAG_SYSTEM, "code": ods}],
            "source": f"https://fhir.{ods.lower()}.nhs.uk/Condition/1",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code or CODES[ods]}]},
        "onsetDateTime": "2020-05-01",
    }


def dumps(resource: dict[str, Any]) -> bytes:
    """FHIR JSON bytes."""
    return orjson.dumps(resource)
