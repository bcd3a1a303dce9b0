"""A source Patient in the mapping's shape, shared by the identity unit and integration tests."""

from __future__ import annotations

from typing import Any

from bcconnect.fhir.constants import (
    NHS_NUMBER_SYSTEM,
    NHS_NUMBER_VERIFICATION_EXTENSION,
    NHS_NUMBER_VERIFICATION_SYSTEM,
    SOURCE_ORG_TAG_SYSTEM,
    mrn_system,
)


def patient(
    pid: str,
    *,
    ods: str = "RL4",
    nhs: str | None = "9990000018",
    status: str | None = "01",
    mrn: str | None = None,
    given: str = "Margaret",
    family: str = "Cartwright",
    birth: str = "1950-03-14",
    gender: str = "female",
    postcode: str | None = "WV10 1AB",
    phone: str | None = "07700900123",
) -> dict[str, Any]:
    """A source Patient in the mapping's shape."""
    identifiers: list[dict[str, Any]] = []
    if nhs:
        ident: dict[str, Any] = {"system": NHS_NUMBER_SYSTEM, "value": nhs}
        if status:
            ident["extension"] = [
                {
                    "url": NHS_NUMBER_VERIFICATION_EXTENSION,
                    "valueCodeableConcept": {"coding": [{"system": NHS_NUMBER_VERIFICATION_SYSTEM, "code": status}]},
                }
            ]
        identifiers.append(ident)
    identifiers.append({"system": mrn_system(ods), "value": mrn or f"M{pid}"})
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"tag": [{"system": SOURCE_ORG_TAG_SYSTEM, "code": ods}]},
        "identifier": identifiers,
        "name": [{"family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth,
    }
    if postcode:
        resource["address"] = [{"postalCode": postcode}]
    if phone:
        resource["telecom"] = [{"system": "phone", "value": phone}]
    return resource
