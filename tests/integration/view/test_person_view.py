"""The person-centred view: golden Patient, re-pointed references, searches and $everything across trusts."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bcconnect.errors import ResourceNotFound
from bcconnect.identity import CONFLICT_EXTENSION, link_patients, person_of
from bcconnect.security import add_objection
from bcconnect.store import ResourceWrite, Store, Tx, open_store, put_resources, set_cursor
from bcconnect.view import (
    ALSO_RECORDED_AS_EXTENSION,
    OPEN_ACCESS,
    SOURCE_REFERENCE_EXTENSION,
    AccessContext,
    View,
    freshness_extension,
    freshness_header,
)

from .conftest import TRUSTS, condition, dumps, source_patient

pytestmark = pytest.mark.anyio


async def _load(store: Store, patients: dict[str, dict[str, Any]], *, same_code: str | None = None) -> str:
    for ods, patient in patients.items():

        def page(tx: Tx, ods: str = ods, patient: dict[str, Any] = patient) -> None:
            put_resources(tx, [
                ResourceWrite("Patient", patient["id"], dumps(patient), source=ods.lower(), compartment=patient["id"]),
                ResourceWrite("Condition", f"{ods.lower()}-c1", dumps(condition(ods, patient["id"], same_code)),
                              source=ods.lower(), compartment=patient["id"]),
            ])  # fmt: skip
            link_patients(tx, [patient], ods_code=ods)
            set_cursor(tx, ods.lower(), "{}")

        await store.write(page)
    person = await store.read(lambda tx: person_of(tx, "rl4-p1"))
    assert person is not None
    return person


def _json(body: bytes | None) -> dict[str, Any]:
    assert body is not None
    result: dict[str, Any] = orjson.loads(body)
    return result


async def test_one_golden_patient_and_everything_from_all_four_trusts(store_url: str) -> None:
    async with open_store(store_url) as store:
        person = await _load(store, {ods: source_patient(ods) for ods in TRUSTS})
        view = View(store)
        golden = _json((await view.read(OPEN_ACCESS, "Patient", person)).body)
        assert golden["id"] == person
        assert len(golden["link"]) == 4
        assert {i["value"] for i in golden["identifier"]} >= {"9990000018", "RL4001", "RBK001", "RNA001", "RXK001"}
        assert "extension" not in golden  # no conflicts
        source = _json((await view.read(OPEN_ACCESS, "Patient", "rbk-p1")).body)
        assert {"other": {"reference": f"Patient/{person}"}, "type": "refer"} in source["link"]
        cond = _json((await view.read(OPEN_ACCESS, "Condition", "rna-c1")).body)
        assert cond["subject"]["reference"] == f"Patient/{person}"
        assert cond["subject"]["extension"] == [
            {"url": SOURCE_REFERENCE_EXTENSION, "valueReference": {"reference": "Patient/rna-p1"}}
        ]
        found = await view.search(OPEN_ACCESS, "Condition", [("patient", person)])
        assert sorted(m.id for m in found.page.matches) == [f"{t.lower()}-c1" for t in sorted(TRUSTS)]
        page = await view.everything(OPEN_ACCESS, person, [])
        bodies = [_json(m.body) for m in page.matches]
        assert bodies[0]["id"] == person
        tags = {b["meta"]["tag"][0]["code"] for b in bodies[1:] if b["resourceType"] == "Condition"}
        assert tags == set(TRUSTS)
        assert sum(1 for b in bodies if b["resourceType"] == "Patient") == 5


async def test_everything_pages_cover_every_resource_once(store_url: str) -> None:
    async with open_store(store_url) as store:
        person = await _load(store, {ods: source_patient(ods) for ods in TRUSTS})
        view = View(store)
        seen: list[str] = []
        first = await view.everything(OPEN_ACCESS, person, [("_count", "3")])
        seen += [f"{m.resource_type}/{m.id}" for m in first.matches]
        offset, more = first.offset + len(first.matches), first.has_more
        while more:
            page = await view.everything(OPEN_ACCESS, person, [("_count", "3")], at=first.t, offset=offset)
            seen += [f"{m.resource_type}/{m.id}" for m in page.matches]
            offset, more = offset + len(page.matches), page.has_more
        assert len(seen) == len(set(seen)) == 9


async def test_conflicting_sex_and_death_are_flagged_on_the_golden_patient(store_url: str) -> None:
    rbk = source_patient("RBK")
    rbk["gender"] = "male"
    rbk["deceasedDateTime"] = "2026-10-01T10:00:00Z"
    async with open_store(store_url) as store:
        person = await _load(store, {"RL4": source_patient("RL4"), "RBK": rbk})
        golden = _json((await View(store).read(OPEN_ACCESS, "Patient", person)).body)
        flagged = sorted(e["valueString"] for e in golden["extension"] if e["url"] == CONFLICT_EXTENSION)
        assert flagged == ["deceased", "gender"]
        assert golden["deceasedDateTime"] == "2026-10-01T10:00:00Z"


async def test_match_returns_graded_golden_patients(store_url: str) -> None:
    async with open_store(store_url) as store:
        person = await _load(store, {ods: source_patient(ods) for ods in ("RL4", "RNA")})
        view = View(store)
        probe = source_patient("RXK")
        probe["identifier"] = [probe["identifier"][1]]  # no NHS number: scored on demographics
        params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": probe}]}
        bundle = orjson.loads(await view.match(params, OPEN_ACCESS, base_url="http://x/fhir"))
        (entry,) = bundle["entry"]
        assert entry["resource"]["id"] == person
        assert entry["search"]["mode"] == "match"
        assert entry["search"]["extension"][0]["valueCode"] == "probable"
        assert 0 < entry["search"]["score"] < 1


async def test_freshness_states_each_source_and_flags_stale_ones(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _load(store, {"RL4": source_patient("RL4")})
        view = View(store, source_ods={"rl4": "RL4", "rbk": "RBK"}, staleness_limits={"rl4": 3600})
        items = await view.freshness(OPEN_ACCESS)
        by_source = {i.source: i for i in items}
        assert by_source["rl4"].ods_code == "RL4"
        assert not by_source["rl4"].stale
        assert by_source["rbk"].stale  # configured, never synced
        header = freshness_header(items)
        assert "RL4=" in header
        assert ";fresh" in header
        assert "RBK=never;stale" in header
        assert len(freshness_extension(items)["extension"]) == 2


async def test_one_fact_from_two_trusts_appears_once_with_both_provenances(store_url: str) -> None:
    async with open_store(store_url) as store:
        person = await _load(store, {ods: source_patient(ods) for ods in ("RL4", "RNA")}, same_code="44054006")
        view = View(store)
        page = await view.everything(OPEN_ACCESS, person, [("_type", "Condition")])
        (only,) = [_json(m.body) for m in page.matches]
        assert [t["code"] for t in only["meta"]["tag"] if t["system"].endswith("ods-organization-code")] == [
            "RL4",
            "RNA",
        ]
        assert only["extension"] == [
            {"url": ALSO_RECORDED_AS_EXTENSION, "valueReference": {"reference": "Condition/rna-c1"}}
        ]
        # each trust's record stays readable on its own, and a search still finds both
        assert (await view.read(OPEN_ACCESS, "Condition", "rna-c1")).body is not None
        found = await view.search(OPEN_ACCESS, "Condition", [("patient", person)])
        assert len(found.page.matches) == 2


async def test_many_persons_records_in_one_read_equal_each_ones_everything(store_url: str) -> None:
    """``View.records`` (a worklist's context) gives what ``$everything`` gives, from any id of the person."""
    async with open_store(store_url) as store:
        person = await _load(store, {ods: source_patient(ods) for ods in TRUSTS}, same_code="44054006")
        view = View(store)
        whole = await view.everything(OPEN_ACCESS, person, [("_count", "1000")])
        expected = [_json(m.body) for m in whole.matches if m.resource_type != "Organization"]
        # the golden Patient, one Condition standing for all four trusts' records, the four trusts' Patients
        assert [r["resourceType"] for r in expected] == ["Patient", "Condition", *["Patient"] * 4]
        found = await view.records(OPEN_ACCESS, [person, "rbk-p1", "no-such-patient"])
        assert set(found) == {person, "rbk-p1"}
        for asked in (person, "rbk-p1"):
            assert [_json(m.body) for m in found[asked]] == expected
        only = await view.records(OPEN_ACCESS, [person], types=["Condition"])
        assert [_json(m.body) for m in only[person]] == expected[1:2]
        # the screen applies as to every read: a caller who may read no Patient learns of no person
        conditions_only = AccessContext(user="u", purpose="directcare", readable_types=frozenset({"Condition"}))
        assert await view.records(conditions_only, [person]) == {}


async def test_many_persons_records_for_a_screened_caller_equal_one_by_one_reads(store_url: str) -> None:
    """Read a page at once, ``View.records`` shows each person's golden Patient exactly as a one-by-one read does
    for this caller: withheld with a sensitive-labelled source (the golden carries its labels) unless the caller
    has the grant, shown for another person asked by any of their ids, absent for an objector."""
    async with open_store(store_url) as store:
        patients = {ods: source_patient(ods) for ods in TRUSTS}
        patients["RBK"]["meta"]["security"] = [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}
        ]
        person = await _load(store, patients)
        other = {ods: source_patient(ods, nhs="9990000026", given="Joan", birth="1961-07-02") for ods in ("RL4", "RXK")}
        for patient in other.values():
            patient["id"] = patient["id"].replace("p1", "p2")
            patient["identifier"][1]["value"] = patient["identifier"][1]["value"].replace("001", "002")
        second = await _load_more(store, other)
        assert second != person
        view = View(store)
        triager = AccessContext(user="triager", purpose="directcare", scopes=frozenset({"user/*.rs"}))
        granted = AccessContext(user="t", purpose="directcare", scopes=frozenset({"user/*.rs"}), allow_sensitive=True)
        for caller in (triager, granted):
            found = await view.records(caller, [person, second, "rxk-p2"])
            for asked, owner in ((person, person), (second, second), ("rxk-p2", second)):
                try:
                    one_by_one = _json((await view.read(caller, "Patient", owner)).body)
                except ResourceNotFound:
                    assert asked not in found
                    continue
                assert _json(found[asked][0].body) == one_by_one
        assert set(await view.records(triager, [person, second])) == {second}
        assert len(_json((await view.records(granted, [person]))[person][0].body)["link"]) == 4
        assert len(_json((await view.records(triager, [second]))[second][0].body)["link"]) == 2
        # an objector: absent, as an unknown Patient is
        await store.write(lambda tx: add_objection(tx, "9990000026"))
        assert await View(store).records(triager, [person, second, "rxk-p2"]) == {}


async def _load_more(store: Store, patients: dict[str, dict[str, Any]]) -> str:
    for ods, patient in patients.items():

        def page(tx: Tx, ods: str = ods, patient: dict[str, Any] = patient) -> None:
            put_resources(tx, [ResourceWrite("Patient", patient["id"], dumps(patient), source=ods.lower(),
                                             compartment=patient["id"])])  # fmt: skip
            link_patients(tx, [patient], ods_code=ods)

        await store.write(page)
    found = await store.read(lambda tx: person_of(tx, next(iter(patients.values()))["id"]))
    assert found is not None
    return found
