"""Synthetic clinical records for the store and API benchmarks (deterministic for a seed).

Each patient has an NHS-number identifier and a mix of Observations, Encounters, Conditions, medication,
allergies and procedures referencing shared practitioners and organisations. :func:`big_patient` makes the
~300-resource patient the ``$everything`` benchmark reads.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson

from bcconnect.store import ResourceWrite

NHS = "https://fhir.nhs.uk/Id/nhs-number"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
OBS_CODES = ["2345-7", "8867-4", "8480-6", "8462-4", "29463-7", "8310-5", "2160-0", "718-7", "4548-4", "2093-3"]
FAMILIES = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Khan", "Singh"]
GIVEN = ["Olivia", "Amelia", "Isla", "Ava", "Noah", "Oliver", "George", "Arthur", "Muhammad", "Leo", "Zoë"]


def _w(body: dict[str, Any], compartment: str | None) -> ResourceWrite:
    return ResourceWrite(body["resourceType"], body["id"], orjson.dumps(body), "bench", compartment)


def nhs_number(index: int) -> str:
    """A deterministic 10-digit identifier (not check-digit valid: the store does not care)."""
    return f"9{index:09d}"


def shared() -> list[ResourceWrite]:
    """Practitioners and organisations every patient points at."""
    out = [_w({"resourceType": "Organization", "id": f"org{i}", "name": f"Trust {i}"}, None) for i in range(4)]
    out += [
        _w({"resourceType": "Practitioner", "id": f"dr{i}", "name": [{"family": FAMILIES[i % 11]}]}, None)
        for i in range(50)
    ]
    return out


def _meta(rng: random.Random) -> dict[str, Any]:
    return {
        "source": "https://fhir.rl4.nhs.uk/Patient/x",
        "tag": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "code": rng.choice(["RL4", "RBK"])}],
        "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation"],
    }


def patient_resources(index: int, count: int, rng: random.Random) -> list[ResourceWrite]:
    """One patient and ``count - 1`` clinical resources for them."""
    pid = f"pat{index}"
    ref = {"reference": f"Patient/{pid}"}
    out = [
        _w(
            {
                "resourceType": "Patient",
                "id": pid,
                "meta": _meta(rng),
                "identifier": [{"system": NHS, "value": nhs_number(index)}],
                "name": [{"family": rng.choice(FAMILIES), "given": [rng.choice(GIVEN)]}],
                "gender": rng.choice(["male", "female"]),
                "birthDate": f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "address": [
                    {"line": ["1 High Street"], "city": "Wolverhampton", "postalCode": f"WV{rng.randint(1, 14)} 1AA"}
                ],
                "generalPractitioner": [{"reference": f"Practitioner/dr{rng.randint(0, 49)}"}],
            },
            pid,
        )
    ]
    for j in range(count - 1):
        rid = f"{pid}-{j}"
        day = f"{rng.randint(2015, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        kind = j % 10
        performer = [{"reference": f"Practitioner/dr{rng.randint(0, 49)}"}]
        if kind < 6:
            body: dict[str, Any] = {
                "resourceType": "Observation",
                "id": rid,
                "meta": _meta(rng),
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "laboratory",
                            }
                        ]
                    }
                ],
                "code": {"coding": [{"system": LOINC, "code": rng.choice(OBS_CODES)}]},
                "subject": ref,
                "performer": performer,
                "effectiveDateTime": f"{day}T{rng.randint(0, 23):02d}:00:00Z",
                "valueQuantity": {
                    "value": round(rng.uniform(1, 200), 1),
                    "unit": "mmol/L",
                    "system": "http://unitsofmeasure.org",
                    "code": "mmol/L",
                },
            }
        elif kind == 6:
            body = {
                "resourceType": "Encounter",
                "id": rid,
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": ref,
                "participant": [{"individual": performer[0]}],
                "period": {"start": f"{day}T09:00:00Z", "end": f"{day}T10:00:00Z"},
                "serviceProvider": {"reference": f"Organization/org{rng.randint(0, 3)}"},
            }
        elif kind == 7:
            body = {
                "resourceType": "Condition",
                "id": rid,
                "clinicalStatus": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
                },
                "code": {"coding": [{"system": SNOMED, "code": str(rng.randint(10000, 99999))}], "text": "Condition"},
                "subject": ref,
                "onsetDateTime": day,
            }
        elif kind == 8:
            body = {
                "resourceType": "MedicationRequest",
                "id": rid,
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": {
                    "coding": [{"system": "https://dmd.nhs.uk", "code": str(rng.randint(1000, 9999))}]
                },
                "subject": ref,
                "authoredOn": day,
                "requester": performer[0],
            }
        else:
            body = {
                "resourceType": "Procedure",
                "id": rid,
                "status": "completed",
                "code": {"coding": [{"system": SNOMED, "code": str(rng.randint(10000, 99999))}]},
                "subject": ref,
                "performedDateTime": day,
                "performer": [{"actor": performer[0]}],
            }
        out.append(_w(body, pid))
    return out


def batches(total: int, per_patient: int, batch: int, seed: int = 7, start: int = 0) -> Iterator[list[ResourceWrite]]:
    """``total`` resources (``per_patient`` each) in batches of about ``batch``."""
    rng = random.Random(seed + start)
    pending: list[ResourceWrite] = []
    index = start
    made = 0
    while made < total:
        resources = patient_resources(index, min(per_patient, total - made), rng)
        pending += resources
        made += len(resources)
        index += 1
        if len(pending) >= batch:
            yield pending
            pending = []
    if pending:
        yield pending


def big_patient(count: int = 300, seed: int = 11) -> list[ResourceWrite]:
    """The patient ``$everything`` is measured on: id ``pat-big`` and ``count`` resources."""
    resources = patient_resources(10_000_000, count, random.Random(seed))
    return [
        ResourceWrite(
            r.resource_type,
            r.id.replace("pat10000000", "pat-big"),
            r.body.replace(b"pat10000000", b"pat-big"),
            r.source,
            "pat-big",
        )
        for r in resources
    ]
