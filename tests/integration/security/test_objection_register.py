"""The objection register on a real store: fed by Consent/Flag resources and by the operator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bcconnect.errors import UsageError
from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM
from bcconnect.security import (
    DEFAULT_OBJECTION_CODING,
    ObjectionChange,
    add_objection,
    forget_objection_origin,
    is_objecting,
    list_objections,
    objecting_subjects,
    record_objection_from_resource,
    remove_objection,
)
from bcconnect.store import Store, Tx

pytestmark = pytest.mark.anyio

SYSTEM, CODE = DEFAULT_OBJECTION_CODING.split("|")
OBJECTION = {"coding": [{"system": SYSTEM, "code": CODE}]}


def consent(status: str = "active", provision: str = "deny", **patient: Any) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": "c1",
        "status": status,
        "category": [OBJECTION],
        "patient": patient or {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": "9990000018"}},
        "provision": {"type": provision},
    }


async def test_an_active_deny_consent_records_an_objection_and_withdrawal_removes_it(store: Store) -> None:
    """Consent active+deny → objecting; the same Consent later inactive → no longer objecting."""
    change = await store.write(lambda tx: record_objection_from_resource(tx, consent()))
    assert change is ObjectionChange.RECORDED
    assert await store.read(lambda tx: is_objecting(tx, nhs_numbers=["999 000 0018"]))
    change = await store.write(lambda tx: record_objection_from_resource(tx, consent(status="inactive")))
    assert change is ObjectionChange.WITHDRAWN
    assert not await store.read(lambda tx: is_objecting(tx, nhs_numbers=["9990000018"]))


async def test_a_flag_without_an_nhs_number_objects_by_patient_reference(store: Store) -> None:
    """A Flag on a Patient reference (a record with no NHS number) is matched by that reference."""
    flag = {
        "resourceType": "Flag",
        "id": "f1",
        "status": "active",
        "code": OBJECTION,
        "subject": {"reference": "Patient/abc"},
    }
    assert await store.write(lambda tx: record_objection_from_resource(tx, flag)) is ObjectionChange.RECORDED
    assert await store.read(lambda tx: objecting_subjects(tx, patient_refs=["Patient/abc", "Patient/zzz"])) == {
        "Patient/abc"
    }
    assert await store.write(lambda tx: forget_objection_origin(tx, "Flag/f1")) == 1
    assert not await store.read(lambda tx: is_objecting(tx, patient_refs=["Patient/abc"]))


@pytest.mark.parametrize(
    "resource",
    [
        {
            "resourceType": "Consent",
            "id": "c2",
            "status": "active",
            "provision": {"type": "deny"},
            "patient": {"reference": "Patient/x"},
        },  # not an objection category: e.g. a research consent
        {
            "resourceType": "Flag",
            "id": "f2",
            "status": "active",
            "code": {"text": "falls risk"},
            "subject": {"reference": "Patient/x"},
        },
        {"resourceType": "Observation", "id": "o1"},
        {"resourceType": "Consent", "status": "active", "category": [OBJECTION], "provision": {"type": "deny"}},
    ],
)
async def test_other_resources_leave_the_register_alone(store: Store, resource: dict[str, Any]) -> None:
    """Unrelated Consents, Flags and resources, or one without an id, are ignored."""
    assert await store.write(lambda tx: record_objection_from_resource(tx, resource)) is ObjectionChange.IGNORED
    assert await store.read(list_objections) == []


async def test_the_operator_adds_lists_and_removes_objections(store: Store) -> None:
    """Manual entries by NHS number; adding twice is a no-op; remove clears every origin for the number."""
    assert await store.write(lambda tx: add_objection(tx, "9990000026", note="letter from patient"))
    assert not await store.write(lambda tx: add_objection(tx, "9990000026"))
    await store.write(
        lambda tx: record_objection_from_resource(
            tx, consent(identifier={"system": NHS_NUMBER_SYSTEM, "value": "9990000026"})
        )
    )
    rows = await store.read(list_objections)
    assert [(r.subject, r.origin) for r in rows] == [("9990000026", "Consent/c1"), ("9990000026", "manual")]
    assert await store.write(lambda tx: remove_objection(tx, "9990000026")) == 2
    assert await store.read(list_objections) == []


async def test_an_invalid_nhs_number_is_refused(store: Store) -> None:
    """The operator cannot register a number that fails the Modulus 11 check."""
    with pytest.raises(UsageError, match="NHS number"):
        await store.write(lambda tx: add_objection(tx, "9876544321"))


MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"


@pytest.mark.parametrize(
    "golden",
    [
        "rl4-fhir/golden/consent-objection.expected.json",
        "rxk-fhir/golden/consent-objection.expected.json",
        "rna-json/golden/patient-objection.expected.json",
    ],
)
async def test_the_consents_our_gp_mappings_emit_are_recognised(store: Store, golden: str) -> None:
    """Every mapping set's golden objection output records an objection for its Patient reference."""
    path = MAPPINGS / golden
    assert path.is_file(), f"{golden} is missing: the mapping set lost its objection golden case"
    resources = orjson.loads(path.read_bytes())
    consents = [r for r in resources if r["resourceType"] == "Consent"]
    assert consents
    for consent in consents:
        reference = consent["patient"]["reference"]

        def record(tx: Tx, c: dict[str, Any] = consent) -> ObjectionChange:
            return record_objection_from_resource(tx, c)

        def objecting(tx: Tx, ref: str = reference) -> bool:
            return is_objecting(tx, patient_refs=[ref])

        assert await store.write(record) is ObjectionChange.RECORDED
        assert await store.read(objecting)


async def test_a_privacy_consent_about_something_else_is_not_an_objection(store: Store) -> None:
    """patient-privacy + deny alone (e.g. another programme's opt-out) does not enter the register."""
    other = {
        "resourceType": "Consent",
        "id": "c5",
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"text": "Research registry opt-out"}],
        "patient": {"reference": "Patient/x"},
        "provision": {"type": "deny"},
    }
    assert await store.write(lambda tx: record_objection_from_resource(tx, other)) is ObjectionChange.IGNORED
