"""The dialects render the same record differently: FHIR (RL4), FHIR with quirks (RXK), vendor JSON, HL7 v2."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from bcconnect.fhir import constants as c
from bcconnect_sandbox.dialects.fhir import to_fhir
from bcconnect_sandbox.dialects.hl7 import messages
from bcconnect_sandbox.dialects.rna import to_rna
from bcconnect_sandbox.dialects.rxk import RETIRED_VERIFICATION_SYSTEM, rxk_quirks
from bcconnect_sandbox.population import make_person
from bcconnect_sandbox.settings import DEFAULT_NOW, NoiseSettings
from bcconnect_sandbox.sources import IdCodec, Record, SourcePatient, trust_records

QUIET = NoiseSettings(nhs_missing=0, nhs_unverified=0, typo=0, nickname=0, dob_swapped=0, moved_house=0, duplicate=0)


def _records(trust: str, want: str) -> list[Record]:
    for i in range(500):
        person = make_person(1, i, DEFAULT_NOW)
        records = trust_records(person, trust, seed=1, noise=QUIET, codec=IdCodec(1, trust))
        if any(r.kind == want for r in records):
            return records
    raise AssertionError(f"no {want} in the first 500 persons")


def test_fhir_patient_carries_uk_core_identifiers() -> None:
    """NHS number with verification status 01, the trust MRN, ethnic category; restricted → meta.security R."""
    patient = _records("RL4", "condition")[0]
    resource: Any = to_fhir(patient, "RL4", 1, DEFAULT_NOW)
    systems = [i["system"] for i in resource["identifier"]]
    assert systems == [c.NHS_NUMBER_SYSTEM, c.mrn_system("RL4")]
    assert resource["meta"] == {
        "versionId": "1",
        "lastUpdated": "2026-11-01T00:00:00.000Z",
        "profile": [c.UKCORE_PROFILE_BASE + "Patient"],
    }
    assert isinstance(patient.fact, SourcePatient)
    restricted = replace(patient, fact=replace(patient.fact, restricted=True))
    meta: Any = to_fhir(restricted, "RL4", 1, DEFAULT_NOW)["meta"]
    assert meta["security"][0]["code"] == "R"


def test_rxk_rewrites_codes_and_keeps_the_input() -> None:
    """RXK: local code systems, retired verification codes, vendor extensions; the RL4 dict is untouched."""
    records = _records("RXK", "condition")
    condition = next(r for r in records if r.kind == "condition")
    plain: Any = to_fhir(condition, "RXK", 1, DEFAULT_NOW)
    quirky: Any = rxk_quirks(plain)
    assert plain["code"]["coding"][0]["system"] == c.SNOMED_SYSTEM
    coding = quirky["code"]["coding"][0]
    assert coding["system"].endswith("local-clinical")
    assert coding["code"].startswith("CL-")
    patient: Any = rxk_quirks(to_fhir(records[0], "RXK", 1, DEFAULT_NOW))
    status = patient["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]
    assert status == {"system": RETIRED_VERIFICATION_SYSTEM, "code": "number-present-and-verified"}


def test_rna_uses_vendor_fields_and_uk_dates() -> None:
    """RNA: patient_id, nhs_no, surname in capitals, dob dd/mm/yyyy, local result codes."""
    records = _records("RNA", "observation")
    data = to_rna(records[0])
    assert isinstance(records[0].fact, SourcePatient)
    assert data["patient_id"] == records[0].id
    assert re.fullmatch(r"\d{2}/\d{2}/\d{4}", str(data["dob"]))
    assert data["surname"] == records[0].fact.family.upper()
    result = to_rna(next(r for r in records if r.kind == "observation"))
    assert result["test_code"] in {"HBA1C", "EGFR", "BMI", "BP", "HB", "WBC", "PLT"}


def test_hl7_messages_are_well_formed_er7() -> None:
    """Each message starts with MSH, segments end with CR, PID-3 repeats MRN and NHS number."""
    records = _records("RBK", "referral")
    patient = records[0].fact
    assert isinstance(patient, SourcePatient)
    out = [m for r in records for m in messages(r, patient, event="new", control="RBK1", at=DEFAULT_NOW)]
    assert out
    for message in out:
        assert message.startswith("MSH|^~\\&|CAREFLOW|RBK|")
        assert message.endswith("\r")
        for seg in message.rstrip("\r").split("\r"):
            assert re.fullmatch(r"[A-Z][A-Z0-9]{2}", seg[:3]), seg
            assert seg[3:4] == "|"
    pid = next(s for s in out[0].split("\r") if s.startswith("PID|"))
    assert pid.split("|")[3] == f"{patient.id}^^^RBK^MR~{patient.nhs_number}^^^NHS^NH"
    assert any("REF^I12" in m for m in out)
