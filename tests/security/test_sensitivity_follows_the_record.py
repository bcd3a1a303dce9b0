"""Sensitivity that follows the record (issue item 9): rules are packaged ValueSets; a label reaches the
resources in the same clinical context — at ingest within a batch, and at read time across batches — so an HIV
diagnosis cannot be inferred from its viral loads, CD4 counts, report, prescription or encounter."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from bcconnect.fhir.constants import V3_ACT_CODE_SYSTEM
from bcconnect.security import label_sensitive, packaged_codes
from bcconnect.store import ResourceWrite, put_resources
from support.security_world import SNOMED, entry_ids, secured, total

LOINC = "http://loinc.org"
HIV_LABEL = {"system": V3_ACT_CODE_SYSTEM, "code": "HIV"}


def _r(rtype: str, rid: str, **body: Any) -> dict[str, Any]:
    return {"resourceType": rtype, "id": rid, "subject": {"reference": "Patient/p1"}, **body}


def _code(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def hiv_episode() -> list[dict[str, Any]]:
    """One HIV clinic episode as a trust sends it: only the diagnosis and the viral load carry HIV codes."""
    in_clinic = {"encounter": {"reference": "Encounter/enc-hiv"}}
    formulary = "https://trust.example.nhs.uk/formulary"
    return [
        _r("Encounter", "enc-hiv", status="finished", **{"class": {"code": "AMB"}}),
        _r("Condition", "cond-hiv", code=_code(SNOMED, "86406008"), **in_clinic),
        _r("Observation", "obs-vl", status="final", code=_code(LOINC, "25836-8")),
        _r("Observation", "obs-cd4", status="final", code=_code(LOINC, "24467-3"), **in_clinic),
        _r("DiagnosticReport", "dr-vl", status="final", code=_code(LOINC, "11502-2"),
           result=[{"reference": "Observation/obs-vl"}]),
        _r("MedicationRequest", "mr-arv", status="active", intent="order",
           medicationCodeableConcept=_code(formulary, "BIKTARVY-50"),
           reasonReference=[{"reference": "Condition/cond-hiv"}]),
        _r("Observation", "obs-hba1c", status="final", code=_code(LOINC, "4548-4")),
    ]  # fmt: skip


def _labels(resource: dict[str, Any]) -> set[str]:
    return {f"{x['system']}|{x['code']}" for x in resource.get("meta", {}).get("security", [])}


def test_rules_are_packaged_value_sets_covering_each_sensitive_area() -> None:
    codes = packaged_codes()
    names = {url.rsplit("/", 1)[-1] for url in codes.sets}
    assert names == {
        "sensitive-hiv",
        "sensitive-sexual-health",
        "sensitive-fertility",
        "sensitive-termination",
        "sensitive-gender-identity",
        "sensitive-safeguarding",
    }
    assert codes.labels[(SNOMED, "86406008")] == (V3_ACT_CODE_SYSTEM, "HIV")
    assert codes.labels[(LOINC, "25836-8")] == (V3_ACT_CODE_SYSTEM, "HIV")
    assert codes.labels[(SNOMED, "52637005")] == (V3_ACT_CODE_SYSTEM, "SEX")  # IVF


def test_a_label_reaches_everything_in_the_clinical_context_within_a_batch() -> None:
    batch = hiv_episode()
    assert label_sensitive(batch) == 6
    by_id = {r["id"]: r for r in batch}
    hiv = f"{V3_ACT_CODE_SYSTEM}|HIV"
    for rid in ("enc-hiv", "cond-hiv", "obs-vl", "obs-cd4", "dr-vl", "mr-arv"):
        assert hiv in _labels(by_id[rid]), rid
    assert _labels(by_id["obs-hba1c"]) == set()
    # guard: without the diagnosis and the HIV test nothing is labelled
    plain = [r for r in copy.deepcopy(hiv_episode()) if r["id"] not in ("cond-hiv", "obs-vl")]
    assert label_sensitive(plain) == 0


@pytest.mark.anyio
async def test_context_across_batches_is_withheld_at_read_time(tmp_path: Path) -> None:
    """The diagnosis came in an earlier batch; the encounter, CD4 count and report arrive later unlabelled."""
    async with secured(f"sqlite:///{tmp_path / 'store.db'}", tmp_path, rate_limit_burst=1000) as endpoint:
        episode = {r["id"]: r for r in hiv_episode()}
        # a prescription's reason is not a search parameter, so its context is labelled at ingest (same batch)
        first = [episode["cond-hiv"], episode["obs-vl"], episode["mr-arv"]]
        label_sensitive(first)
        later = [episode[k] for k in ("enc-hiv", "obs-cd4", "dr-vl", "obs-hba1c")]
        later = [{**r, "meta": {}} for r in later]  # stored as sent, no labels
        for batch in (first, later):
            writes = [ResourceWrite(r["resourceType"], r["id"], orjson.dumps(r), "test", "p1") for r in batch]
            await endpoint.store.write(lambda tx, writes=writes: put_resources(tx, writes))
        plain, granted = endpoint.token(), endpoint.token("user/*.rs bcconnect/sensitive.read")
        for path, hidden in (
            ("/Encounter", "Encounter/enc-hiv"),
            ("/Observation", "Observation/obs-cd4"),
            ("/DiagnosticReport", "DiagnosticReport/dr-vl"),
            ("/MedicationRequest", "MedicationRequest/mr-arv"),
        ):
            shown = await endpoint.client.get(path, params={"patient": "p1"}, headers=plain)
            assert hidden not in entry_ids(shown), path
            assert total(shown) == len(entry_ids(shown)), path
            assert (await endpoint.client.get(f"/{hidden}", headers=plain)).status_code == 404
            assert hidden in entry_ids(await endpoint.client.get(path, params={"patient": "p1"}, headers=granted))
        everything = entry_ids(await endpoint.client.get("/Patient/p1/$everything?_count=200", headers=plain))
        assert "Observation/obs-hba1c" in everything
        assert not {"Encounter/enc-hiv", "Observation/obs-cd4", "DiagnosticReport/dr-vl"} & set(everything)
