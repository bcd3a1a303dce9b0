"""Behaviour of mapping sets: ids, references, provenance, errors, terminology, sensitivity labels."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from bcconnect.errors import MappingError, ParseError, ValidationError
from bcconnect.fhir.constants import MAPPING_TAG_SYSTEM, NHS_NUMBER_SYSTEM, SOURCE_ORG_TAG_SYSTEM, mrn_system
from bcconnect.fhir.ids import BCCONNECT_NAMESPACE
from bcconnect.mapping import MappingContext, MappingSet, TerminologyError

SetOf = Callable[[str], MappingSet]
RL4 = "https://fhir.rl4.nhs.uk"


def ctx(key: str, ods: str = "RL4", system: str = RL4) -> MappingContext:
    """A mapping context for one record."""
    return MappingContext(ods, system, key, "2026-11-22T10:00:00Z")


def uuid5(text: str) -> str:
    """The id recipe of docs/seams.md, written out independently of the engine."""
    return str(uuid.uuid5(BCCONNECT_NAMESPACE, text))


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "123",
    "identifier": [
        {"system": NHS_NUMBER_SYSTEM, "value": "9990000018", "extension": [{
            "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
            "valueCodeableConcept": {"coding": [{"code": "01"}]}}]},
        {"system": "https://fhir.rl4.nhs.uk/Id/mrn", "value": "RL4-123"},
    ],
    "name": [{"family": "Smith", "given": ["Mary"]}],
    "gender": "female",
    "birthDate": "1961-03",
}  # fmt: skip
ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "id": "e1",
    "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "subject": {"reference": "Patient/123"},
}


def test_ids_are_uuid5_over_system_type_and_key_and_stable(mapping_set_of: SetOf) -> None:
    """The same record maps to the same resource (same id, same content) every time."""
    ms = mapping_set_of("rl4-fhir")
    first = ms.map("Patient", orjson.dumps(PATIENT), context=ctx("Patient/123")).resources
    again = ms.map("Patient", orjson.dumps(PATIENT), context=ctx("Patient/123")).resources
    assert first == again
    assert first[0]["id"] == uuid5(f"{RL4}|Patient|Patient/123")


def test_reference_uses_the_id_recipe(mapping_set_of: SetOf) -> None:
    """An RL4 Encounter's Patient/123 becomes Patient/<uuid5(RL4 system|Patient|Patient/123)>."""
    ms = mapping_set_of("rl4-fhir")
    enc = ms.map("Encounter", orjson.dumps(ENCOUNTER), context=ctx("Encounter/e1")).resources[0]
    assert enc["subject"] == {"reference": f"Patient/{uuid5(f'{RL4}|Patient|Patient/123')}"}


def test_every_resource_carries_its_provenance(mapping_set_of: SetOf) -> None:
    """meta.source, the trust's ODS tag, the mapping id|version tag and the UK Core profile."""
    ms = mapping_set_of("rl4-fhir")
    meta = ms.map("Patient", orjson.dumps(PATIENT), context=ctx("Patient/123")).resources[0]["meta"]
    assert meta["source"] == f"{RL4}/Patient/123"
    assert {"system": SOURCE_ORG_TAG_SYSTEM, "code": "RL4"} in meta["tag"]
    assert any(t["system"] == MAPPING_TAG_SYSTEM and t["code"] == f"{ms.id}|{ms.version}" for t in meta["tag"])
    assert meta["profile"] == ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]


def test_patient_keeps_identity_fields_and_partial_birth_date(mapping_set_of: SetOf) -> None:
    """NHS number with verification status, trust MRN, and month-precision birthDate survive."""
    ms = mapping_set_of("rl4-fhir")
    patient = ms.map("Patient", orjson.dumps(PATIENT), context=ctx("Patient/123")).resources[0]
    systems = [i["system"] for i in patient["identifier"]]
    assert systems == [NHS_NUMBER_SYSTEM, mrn_system("RL4")]
    assert patient["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "01"
    assert patient["birthDate"] == "1961-03"


def test_tombstone_ids_match_the_mapped_ids(mapping_set_of: SetOf) -> None:
    """resource_ids_for names the very resources a record mapped to (FHIR and RNA keys)."""
    ms = mapping_set_of("rl4-fhir")
    mapped = ms.map("Patient", orjson.dumps(PATIENT), context=ctx("Patient/123")).resources[0]["id"]
    assert ms.resource_ids_for("Patient", "Patient/123", ctx("Patient/123")) == [("Patient", mapped)]
    rna = mapping_set_of("rna-json")
    rna_ctx = ctx("patient/P1", "RNA", "https://api.rna.nhs.uk")
    data = {"patient_id": "P1", "surname": "X", "forenames": "Y", "dob": "01/02/1990", "sex": "F",
            "shcr_objection": "Y"}  # fmt: skip
    produced = rna.map("patient", orjson.dumps(data), context=rna_ctx).resources
    ids = rna.resource_ids_for("patient", "patient/P1", rna_ctx)
    assert sorted(ids) == sorted((r["resourceType"], r["id"]) for r in produced)


def test_runtime_error_names_rule_source_value_and_target(mapping_set_of: SetOf) -> None:
    """A bad dd/mm/yyyy date: the message names the rule, the source path, the value and the target."""
    rna = mapping_set_of("rna-json")
    data = {"patient_id": "P1", "surname": "X", "dob": "31/02/1990", "sex": "F"}
    with pytest.raises(MappingError) as info:
        rna.map("patient", orjson.dumps(data), context=ctx("patient/P1", "RNA", "https://api.rna.nhs.uk"))
    text = str(info.value)
    assert "birth-date (patient.yaml:" in text
    assert "source dob" in text
    assert "'31/02/1990'" in text
    assert "target birthDate" in text


def test_failures_are_record_errors_with_reasons(mapping_set_of: SetOf) -> None:
    """Parse, unknown record type and validation failures raise the quarantine error classes."""
    ms = mapping_set_of("rl4-fhir")
    with pytest.raises(ParseError):
        ms.map("Patient", b"[1, 2]", context=ctx("Patient/1"))
    with pytest.raises(ParseError):
        ms.map("Patient", orjson.dumps(ENCOUNTER), context=ctx("Patient/1"))
    with pytest.raises(MappingError, match="no mapping for record type 'Basic'"):
        ms.map("Basic", b"{}", context=ctx("Basic/1"))
    broken = {**PATIENT, "birthDate": "1961-02-30"}
    with pytest.raises(ValidationError) as info:
        ms.map("Patient", orjson.dumps(broken), context=ctx("Patient/123"))
    assert info.value.details


def test_constants_are_not_shared_between_records(mapping_set_of: SetOf) -> None:
    """Writing into a constant object (BP components) in one record never leaks into the next."""
    rna = mapping_set_of("rna-json")
    context = ctx("result/R1", "RNA", "https://api.rna.nhs.uk")
    base = {"result_id": "R1", "patient_id": "P1", "test_code": "BP", "test_name": "BP", "taken": "01/01/2026 10:00:00",
            "status": "F"}  # fmt: skip
    first = rna.map("result", orjson.dumps({**base, "value": "120/80"}), context=context).resources[0]
    second = rna.map("result", orjson.dumps({**base, "value": "140/90"}), context=context).resources[0]
    assert [c["valueQuantity"]["value"] for c in first["component"]] == [120, 80]
    assert [c["valueQuantity"]["value"] for c in second["component"]] == [140, 90]


def test_terminology_policies_and_unmapped_report(mapping_set_of: SetOf) -> None:
    """error quarantines, keep-local keeps the local coding alone, default-code adds the default; all counted."""
    rna = mapping_set_of("rna-json")
    rna.terminology.reset_report()
    context = ctx("diagnosis/D1", "RNA", "https://api.rna.nhs.uk")
    diagnosis = {
        "diagnosis_id": "D1",
        "patient_id": "P1",
        "code": "DX44054006",
        "description": "T2DM",
        "status": "ACTIVE",
    }
    condition = rna.map("diagnosis", orjson.dumps(diagnosis), context=context).resources[0]
    assert [c["system"] for c in condition["code"]["coding"]] == [
        "https://api.rna.nhs.uk/CodeSystem/diagnosis",
        "http://snomed.info/sct",
    ]
    for _ in range(2):
        with pytest.raises(TerminologyError):
            rna.map("diagnosis", orjson.dumps({**diagnosis, "code": "DX0"}), context=context)
    med = {
        "medication_id": "M1",
        "patient_id": "P1",
        "drug_code": "RX0",
        "drug_name": "Local drug",
        "status": "CURRENT",
    }
    request = rna.map("medication", orjson.dumps(med), context=ctx("medication/M1", "RNA", "https://x")).resources[0]
    assert [c["code"] for c in request["medicationCodeableConcept"]["coding"]] == ["RX0"]
    patient = {"patient_id": "P1", "surname": "X", "dob": "01/02/1990", "sex": "F", "ethnicity": "ZZZZ"}
    mapped = rna.map("patient", orjson.dumps(patient), context=ctx("patient/P1", "RNA", "https://x")).resources[0]
    assert mapped["extension"][0]["valueCodeableConcept"]["coding"][-1]["code"] == "99"
    report = [(u.code, u.count) for u in rna.unmapped_report()]
    assert report == [("DX0", 2), ("RX0", 1), ("ZZZZ", 1)]


def test_sensitivity_labels(mapping_set_of: SetOf) -> None:
    """A sexual-health clinic encounter is labelled SEX; a restricted patient keeps Confidentiality R."""
    rna = mapping_set_of("rna-json")
    encounter = {"encounter_id": "E1", "patient_id": "P1", "type": "GUM", "specialty": "360", "status": "COMPLETE",
                 "start": "01/01/2026 10:00:00"}  # fmt: skip
    out = rna.map("encounter", orjson.dumps(encounter), context=ctx("encounter/E1", "RNA", "https://x")).resources
    assert {"SEX"} == {s["code"] for s in out[0]["meta"]["security"]}
    restricted = {**PATIENT, "meta": {"security": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]}}  # fmt: skip
    patient = mapping_set_of("rl4-fhir").map("Patient", orjson.dumps(restricted), context=ctx("Patient/123"))
    assert patient.resources[0]["meta"]["security"][0]["code"] == "R"


def test_hl7_repetition_filter_and_merge(mapping_set_of: SetOf) -> None:
    """PID-3[5=MR] picks the MRN whatever its repetition; A40 links the retired record to the survivor."""
    rbk = mapping_set_of("rbk-hl7v2")
    system = "https://hl7.rbk.nhs.uk"
    message = (
        "MSH|^~\\&|PAS|RBK|||20261122||ADT^A40^ADT_A39|C1|P|2.4\r"
        "PID|1||9990000018^^^NHS^NH~NEW1^^^RBK^MR||SMITH^MARY||19610307|F\r"
        "MRG|OLD1^^^RBK^MR\r"
    )
    old = rbk.map("ADT^A40", message.encode(), context=ctx("RBK|C1", "RBK", system)).resources[0]
    assert old["id"] == uuid5(f"{system}|Patient|OLD1")
    assert old["link"] == [
        {"other": {"reference": f"Patient/{uuid5(f'{system}|Patient|NEW1')}"}, "type": "replaced-by"}
    ]
    assert old["active"] is False


def test_withdrawn_objection_marks_the_consent_stale(mapping_set_of: SetOf) -> None:
    """A patient record that no longer objects names its old Consent for deletion."""
    rna = mapping_set_of("rna-json")
    context = ctx("patient/P1", "RNA", "https://api.rna.nhs.uk")
    data = {"patient_id": "P1", "surname": "X", "dob": "01/02/1990", "sex": "F", "shcr_objection": "Y"}
    objecting = rna.map("patient", orjson.dumps(data), context=context)
    consent = next((r["resourceType"], r["id"]) for r in objecting.resources if r["resourceType"] == "Consent")
    assert rna.stale_ids("patient", context, objecting) == []
    withdrawn = rna.map("patient", orjson.dumps({**data, "shcr_objection": "N"}), context=context)
    assert rna.stale_ids("patient", context, withdrawn) == [consent]
