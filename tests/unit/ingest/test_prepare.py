"""Classifying a page: new, changed, unchanged (same content, duplicate, older version) or quarantined."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bcconnect.adapters import RawRecord, RawReject
from bcconnect.errors import ReasonCode
from bcconnect.ingest._prepare import Landed, Outcome, deduplicate, prepare_page
from bcconnect.mapping import MappingContext, MappingSet, load_mapping_set

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"


@pytest.fixture(scope="module")
def fhir_set() -> MappingSet:
    return load_mapping_set(MAPPINGS / "rl4-fhir")


def _patient(pid: str, version: str, family: str = "Khan") -> RawRecord:
    body = {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"versionId": version, "lastUpdated": "2026-11-01T10:00:00.000Z"},
        "identifier": [{"system": "https://fhir.rl4.nhs.uk/Id/mrn", "value": f"RL4{pid}"}],
        "name": [{"family": family, "given": ["Aisha"]}],
        "gender": "female",
        "birthDate": "1980-02-03",
    }
    return RawRecord("Patient", f"Patient/{pid}", orjson.dumps(body), version, "2026-11-01T10:00:00.000Z")


def _context(record: RawRecord) -> MappingContext:
    return MappingContext("RL4", "https://fhir.rl4.nhs.uk", record.source_key, "2026-11-22T00:00:00Z")


def test_duplicates_in_a_page_keep_the_newest_version() -> None:
    """Two deliveries of one key: the higher version wins, whatever the order; the other is counted."""
    kept, dropped = deduplicate([_patient("1", "3"), _patient("1", "2"), _patient("2", "1")])
    assert dropped == 1
    assert {(r.source_key, r.version) for r in kept} == {("Patient/1", "3"), ("Patient/2", "1")}


def test_each_record_is_classified_against_the_landing(fhir_set: MappingSet) -> None:
    """New, changed, unchanged (same hash) and stale (older version) records, and a reject, all accounted."""
    same = _patient("same", "1")
    older = _patient("older", "1")
    landed = {
        same.source_key: Landed(same.content_hash, "1", False),
        older.source_key: Landed("other-hash", "5", False),
        "Patient/changed": Landed("other-hash", "1", False),
    }
    page = prepare_page(
        [_patient("new", "1"), _patient("changed", "2", family="Begum"), same, older, _patient("new", "1")],
        [RawReject(b"{not json", "Patient", "entry without id")],
        '{"cursor": 1}',
        landed=landed,
        mapping_set=fhir_set,
        context_for=_context,
    )
    outcomes = {p.record.source_key: p.outcome for p in page.records}
    assert outcomes == {
        "Patient/new": Outcome.NEW,
        "Patient/changed": Outcome.CHANGED,
        "Patient/same": Outcome.UNCHANGED,
        "Patient/older": Outcome.UNCHANGED,
    }
    assert page.duplicates == 1
    assert page.fetched == 6
    assert [q.reason for q in page.rejects] == [ReasonCode.PARSE]
    written = {p.record.source_key: p.resources for p in page.records}
    assert written["Patient/same"] == []
    assert written["Patient/new"][0]["resourceType"] == "Patient"


def test_a_record_the_mapping_cannot_read_is_quarantined_with_its_reason(fhir_set: MappingSet) -> None:
    """Broken JSON is not dropped: it becomes a quarantine entry carrying the payload and the reason."""
    broken = RawRecord("Patient", "Patient/bad", b'{"resourceType": "Patient", "id": ', "1", None)
    page = prepare_page([broken], [], None, landed={}, mapping_set=fhir_set, context_for=_context)
    (only,) = page.records
    assert only.outcome is Outcome.QUARANTINED
    assert only.quarantine is not None
    assert only.quarantine.payload == broken.payload
    assert only.quarantine.message
