"""Screening stored resources: objection withholds a person, sensitivity withholds labelled records, R redacts."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM, V3_ACT_CODE_SYSTEM, V3_CONFIDENTIALITY_SYSTEM
from bcconnect.security import add_objection, screen_resources, start_notes
from bcconnect.store import ResourceWrite, Store, StoredResource, Tx, put_resources, read_current
from bcconnect.view import AccessContext

pytestmark = pytest.mark.anyio

CLINICIAN = AccessContext(user="u", purpose="directcare", scopes=frozenset({"user/*.rs"}))
SENSITIVE_READER = AccessContext(user="u", purpose="directcare", allow_sensitive=True)


def patient(pid: str, nhs: str, *, restricted: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
        "address": [{"postalCode": "DY1 2HQ"}],
        "generalPractitioner": [{"reference": "Organization/gp1"}],
    }
    if restricted:
        body["meta"] = {"security": [{"system": V3_CONFIDENTIALITY_SYSTEM, "code": "R"}]}
    return body


def condition(cid: str, pid: str, *, label: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Condition", "id": cid, "subject": {"reference": f"Patient/{pid}"}}
    if label:
        body["meta"] = {"security": [{"system": V3_ACT_CODE_SYSTEM, "code": label}]}
    return body


def write(resource: dict[str, Any], compartment: str | None) -> ResourceWrite:
    return ResourceWrite(resource["resourceType"], resource["id"], orjson.dumps(resource), "RNA", compartment)


@pytest.fixture
async def seeded(store: Store) -> Store:
    writes = [
        write(patient("p1", "9990000018"), "p1"),
        write(patient("p2", "9990000026"), "p2"),
        write(patient("p3", "9990000034", restricted=True), "p3"),
        write(condition("c1", "p1"), "p1"),
        write(condition("c2", "p2"), "p2"),
        write(condition("c3", "p1", label="STD"), "p1"),
        write(
            {
                "resourceType": "Encounter",
                "id": "e3",
                "subject": {"reference": "Patient/p3"},
                "location": [{"location": {"reference": "Location/ward9"}}],
            },
            "p3",
        ),
        write({"resourceType": "Location", "id": "ward9", "name": "Ward 9"}, None),
        write({"resourceType": "Organization", "id": "gp1", "name": "The Surgery"}, None),
    ]
    await store.write(lambda tx: put_resources(tx, writes))
    await store.write(lambda tx: add_objection(tx, "9990000026"))
    return store


async def screened(store: Store, refs: list[str], access: AccessContext) -> tuple[list[str], set[str], set[str]]:
    def run(tx: Tx) -> tuple[list[str], set[str], set[str]]:
        found: list[StoredResource] = []
        for ref in refs:
            rtype, rid = ref.split("/")
            stored = read_current(tx, rtype, rid)
            assert stored is not None
            found.append(stored)
        result = screen_resources(tx, found, access)
        return ([f"{r.resource_type}/{r.id}" for r in result.resources], result.withheld, result.patients)

    return await store.read(run)


async def test_an_objecting_persons_records_are_all_withheld_and_noted(seeded: Store) -> None:
    """p2 objects: their Patient and Condition vanish; the page says something was withheld; p2 is audited."""
    notes = start_notes()
    shown, withheld, patients = await screened(
        seeded, ["Patient/p1", "Patient/p2", "Condition/c1", "Condition/c2"], CLINICIAN
    )
    assert shown == ["Patient/p1", "Condition/c1"]
    assert withheld == {"objection"}
    assert patients == {"Patient/p1", "Patient/p2"}
    assert notes.patients == {"Patient/p1", "Patient/p2"}
    assert notes.withheld == {"objection"}


async def test_sensitive_records_need_the_grant(seeded: Store) -> None:
    """The STD-labelled Condition is withheld from a clinician and shown with the sensitive grant."""
    shown, withheld, _ = await screened(seeded, ["Condition/c1", "Condition/c3"], CLINICIAN)
    assert (shown, withheld) == (["Condition/c1"], {"sensitive"})
    shown, withheld, _ = await screened(seeded, ["Condition/c1", "Condition/c3"], SENSITIVE_READER)
    assert (shown, withheld) == (["Condition/c1", "Condition/c3"], set())


async def test_a_restricted_patient_loses_address_gp_and_places(seeded: Store) -> None:
    """p3 is R: the Patient is redacted, the Encounter loses its location, the included ward and GP vanish."""

    def run(tx: Tx) -> tuple[list[str], list[bytes], set[str]]:
        found = [
            read_current(tx, t, i)
            for t, i in (("Patient", "p3"), ("Encounter", "e3"), ("Location", "ward9"), ("Organization", "gp1"))
        ]
        result = screen_resources(tx, [f for f in found if f is not None], SENSITIVE_READER)
        return (
            [f"{r.resource_type}/{r.id}" for r in result.resources],
            [r.body or b"" for r in result.resources],
            result.withheld,
        )

    shown, bodies, withheld = await seeded.read(run)
    assert shown == ["Patient/p3", "Encounter/e3"]
    assert withheld == {"restricted"}
    assert b"DY1" not in bodies[0]
    assert b"generalPractitioner" not in bodies[0]
    assert b"ward9" not in bodies[1]


async def test_a_plain_page_passes_unchanged(seeded: Store) -> None:
    """Nothing objecting, sensitive or restricted: every resource is shown, byte for byte."""
    shown, withheld, _ = await screened(seeded, ["Patient/p1", "Condition/c1", "Organization/gp1"], CLINICIAN)
    assert shown == ["Patient/p1", "Condition/c1", "Organization/gp1"]
    assert withheld == set()


async def test_an_objection_on_one_record_withholds_the_whole_person(seeded: Store) -> None:
    """p9 has no NHS number but is the same person as objecting p2: its records are withheld too."""
    extra = {"resourceType": "Patient", "id": "p9", "name": [{"family": "Clinic"}]}
    await seeded.write(lambda tx: put_resources(tx, [write(extra, "p9"), write(condition("c9", "p9"), "p9")]))

    def same_person(tx: Tx, pid: str) -> list[str]:
        return ["person-x", "p2", "p9"] if pid in ("person-x", "p2", "p9") else [pid]

    def run(tx: Tx, related: bool) -> list[str]:
        found = [r for r in (read_current(tx, "Patient", "p9"), read_current(tx, "Condition", "c9")) if r]
        if related:
            result = screen_resources(tx, found, CLINICIAN, related=same_person)
        else:
            result = screen_resources(tx, found, CLINICIAN)
        return [f"{r.resource_type}/{r.id}" for r in result.resources]

    assert await seeded.read(lambda tx: run(tx, False)) == ["Patient/p9", "Condition/c9"]
    assert await seeded.read(lambda tx: run(tx, True)) == []


async def test_confinement_covers_every_record_of_the_tokens_person(seeded: Store) -> None:
    """A patient/ token confined to a golden id sees its source records and no one else's."""

    def same_person(tx: Tx, pid: str) -> list[str]:
        return ["person-1", "p1"] if pid in ("person-1", "p1") else [pid]

    def run(tx: Tx) -> list[str]:
        found = [r for r in (read_current(tx, "Condition", "c1"), read_current(tx, "Patient", "p3")) if r]
        result = screen_resources(tx, found, SENSITIVE_READER, confine_to="person-1", related=same_person)
        return [f"{r.resource_type}/{r.id}" for r in result.resources]

    assert await seeded.read(run) == ["Condition/c1"]
