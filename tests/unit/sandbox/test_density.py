"""Record density: a shared-care-record-like history per person, shaped by age and conditions."""

from __future__ import annotations

import statistics
from pathlib import Path

import orjson
import pytest

from bcconnect_sandbox.density import ANALYTES, PANELS, densify, expected_resources
from bcconnect_sandbox.generate import generate_to_directory
from bcconnect_sandbox.population import make_person
from bcconnect_sandbox.settings import DEFAULT_NOW, SandboxSettings
from bcconnect_sandbox.sources import IdCodec, trust_records
from bcconnect_sandbox.state import dense_person

PERSONS = 400


def _resources(settings: SandboxSettings, index: int) -> int:
    person = dense_person(settings, index)
    return sum(
        len(trust_records(person, t, seed=settings.seed, noise=settings.noise, codec=IdCodec(settings.seed, t)))
        for t in person.trusts
    )


def test_density_zero_leaves_every_person_as_the_sparse_story() -> None:
    """Density 0 is the world every identity and triage fixture is built on: nothing added, nothing drawn."""
    settings = SandboxSettings(density=0)
    for index in range(50):
        assert dense_person(settings, index) == make_person(0, index, DEFAULT_NOW)


def test_the_default_density_gives_a_region_of_100_to_400_resources_a_person() -> None:
    settings = SandboxSettings(persons=PERSONS)
    assert settings.density == 1.0
    counts = [_resources(settings, i) for i in range(PERSONS)]
    assert 100 <= statistics.mean(counts) <= 400
    sparse = [_resources(SandboxSettings(persons=PERSONS, density=0), i) for i in range(PERSONS)]
    assert statistics.mean(sparse) < 15  # what every number flattered before


def test_older_and_multimorbid_people_carry_more() -> None:
    settings = SandboxSettings(persons=PERSONS)
    young_well: list[int] = []
    old_multimorbid: list[int] = []
    for index in range(PERSONS):
        person = dense_person(settings, index)
        age = (DEFAULT_NOW.date() - person.birth_date).days // 365
        if age < 40 and person.ltc_count == 0:
            young_well.append(expected_resources(person))
        elif age >= 60 and person.ltc_count >= 2:
            old_multimorbid.append(expected_resources(person))
    assert young_well
    assert old_multimorbid
    assert statistics.mean(old_multimorbid) > 4 * statistics.mean(young_well)


def test_density_scales_the_rates_and_keeps_the_person() -> None:
    person = make_person(3, 17, DEFAULT_NOW)
    one = densify(person, seed=3, density=1, now=DEFAULT_NOW)
    two = densify(person, seed=3, density=2, now=DEFAULT_NOW)
    assert one == densify(person, seed=3, density=1, now=DEFAULT_NOW)  # deterministic
    assert (one.given, one.nhs_number, one.conditions, one.referrals) == (
        person.given,
        person.nhs_number,
        person.conditions,
        person.referrals,
    )
    assert expected_resources(two) > expected_resources(one) > expected_resources(person)
    with pytest.raises(ValueError, match="density"):
        densify(person, seed=3, density=-1, now=DEFAULT_NOW)
    with pytest.raises(ValueError, match="density"):
        SandboxSettings(density=9)


def test_a_person_known_to_several_trusts_has_history_at_each() -> None:
    settings = SandboxSettings(persons=PERSONS)
    spread = 0
    for index in range(PERSONS):
        person = dense_person(settings, index)
        if len(person.trusts) > 1 and person.ltc_count >= 2:
            trusts_with_results = {o.trust for o in person.observations}
            spread += len(trusts_with_results) > 1
    assert spread >= 10


def test_a_dense_world_writes_panels_repeats_and_vitals_in_every_dialect(tmp_path: Path) -> None:
    """Panels travel as a DiagnosticReport over one Observation per analyte (FHIR), one ORU per panel (HL7), one
    result per analyte (RNA); repeat issues before the current prescription are completed."""
    manifest = generate_to_directory(SandboxSettings(persons=30, seed=4), tmp_path)
    assert manifest["density"] == 1.0
    reports = [orjson.loads(line) for line in (tmp_path / "RL4" / "DiagnosticReport.ndjson").read_bytes().splitlines()]
    panel_codes = {r["code"]["coding"][0]["code"] for r in reports}
    assert panel_codes >= {PANELS["ue"].code, PANELS["lft"].code, PANELS["fbc"].code}
    ue = next(r for r in reports if r["code"]["coding"][0]["code"] == PANELS["ue"].code)
    assert len(ue["result"]) == len(ANALYTES["ue"])
    observations = [orjson.loads(x) for x in (tmp_path / "RL4" / "Observation.ndjson").read_bytes().splitlines()]
    vitals = {
        o["code"]["coding"][0]["code"] for o in observations if o["category"][0]["coding"][0]["code"] == "vital-signs"
    }
    assert vitals >= {"8867-4", "59408-5", "85354-9"}
    medications = [orjson.loads(x) for x in (tmp_path / "RL4" / "MedicationRequest.ndjson").read_bytes().splitlines()]
    assert {m["status"] for m in medications} == {"active", "completed"}
    rna = (tmp_path / "RNA" / "changes.ndjson").read_bytes()
    assert b'"test_code":"CREAT"' in rna
    assert b'"status":"COMPLETED"' in rna
    hl7 = (tmp_path / "RBK" / "messages.hl7").read_bytes()
    assert b"OBR|1||" in hl7
    assert f"{PANELS['lipids'].code}^".encode() in hl7
    total = sum(manifest["records"].values())  # type: ignore[union-attr]
    assert total > 30 * 50
