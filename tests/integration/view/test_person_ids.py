"""Stable person ids, ids that survive a merge, and the golden Patient's versions (on SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bcconnect.errors import ResourceNotFound
from bcconnect.identity import link_patients, merge, person_of, stable_person_id
from bcconnect.store import ResourceWrite, Store, Tx, open_store, put_resources
from bcconnect.view import OPEN_ACCESS, View

from .conftest import TRUSTS, condition, dumps, source_patient

pytestmark = pytest.mark.anyio


async def _arrive(store: Store, patients: list[tuple[str, dict[str, Any]]]) -> None:
    """Each trust's page as ingest writes it: the Patient and a Condition, linked in the same transaction."""
    for ods, patient in patients:

        def page(tx: Tx, ods: str = ods, patient: dict[str, Any] = patient) -> None:
            put_resources(tx, [
                ResourceWrite("Patient", patient["id"], dumps(patient), source=ods.lower(), compartment=patient["id"]),
                ResourceWrite("Condition", f"{ods.lower()}-c1", dumps(condition(ods, patient["id"])),
                              source=ods.lower(), compartment=patient["id"]),
            ])  # fmt: skip
            link_patients(tx, [patient], ods_code=ods)

        await store.write(page)


def _json(body: bytes | None) -> dict[str, Any]:
    assert body is not None
    found: dict[str, Any] = orjson.loads(body)
    return found


async def test_the_same_records_give_the_same_person_id_whatever_the_arrival_order(
    store_url: str, tmp_path: Any
) -> None:
    patients = [(ods, source_patient(ods)) for ods in TRUSTS]
    ids = []
    for order, url in ((patients, store_url), (patients[::-1], f"sqlite:///{tmp_path / 'reversed.db'}")):
        async with open_store(url) as store:
            await _arrive(store, order)
            persons = {await store.read(lambda tx, pid=p["id"]: person_of(tx, pid)) for _, p in patients}
            assert len(persons) == 1
            person = persons.pop()
            assert person is not None
            golden = _json((await View(store).read(OPEN_ACCESS, "Patient", person)).body)
            assert golden["id"] == person
            ids.append(person)
    assert ids[0] == ids[1] == stable_person_id(p["id"] for _, p in patients)


async def test_a_merged_away_person_id_answers_with_replaced_by(store_url: str) -> None:
    async with open_store(store_url) as store:
        view = View(store)
        margaret = source_patient("RL4")
        other = source_patient("RBK", nhs="9990000026", given="Zebedee", birth="1961-07-02")
        await _arrive(store, [("RL4", margaret), ("RBK", other)])
        kept = await store.read(lambda tx: person_of(tx, margaret["id"]))
        absorbed = await store.read(lambda tx: person_of(tx, other["id"]))
        assert kept is not None
        assert absorbed is not None
        assert kept != absorbed
        assert (await view.read(OPEN_ACCESS, "Patient", absorbed)).version_id == "1"

        survivor = await store.write(
            lambda tx: merge(tx, other["id"], margaret["id"], origin="manual", actor="steward")
        )
        assert survivor == kept
        retired = _json((await view.read(OPEN_ACCESS, "Patient", absorbed)).body)
        assert retired["active"] is False
        assert retired["link"] == [{"other": {"reference": f"Patient/{kept}"}, "type": "replaced-by"}]
        # the old version is still there, and the survivor now holds both trusts' records
        history = await view.history(OPEN_ACCESS, "Patient", absorbed)
        assert [v.version_id for v in history.versions] == ["2", "1"]
        old = _json((await view.vread(OPEN_ACCESS, "Patient", absorbed, "1")).body)
        assert old["name"][0]["given"] == ["Zebedee"]
        golden = _json((await view.read(OPEN_ACCESS, "Patient", kept)).body)
        assert {link["other"]["reference"] for link in golden["link"]} == {
            f"Patient/{margaret['id']}",
            f"Patient/{other['id']}",
        }
        # the retired id is found by its own id, and the survivor's Conditions span both trusts
        page = await view.search(OPEN_ACCESS, "Patient", [("_id", absorbed)])
        assert [m.id for m in page.page.matches] == [absorbed]
        conditions = await view.search(OPEN_ACCESS, "Condition", [("patient", other["id"])])
        assert sorted(m.id for m in conditions.page.matches) == ["rbk-c1", "rl4-c1"]


async def test_the_golden_patient_has_versions_history_and_vread(store_url: str) -> None:
    async with open_store(store_url) as store:
        view = View(store)
        await _arrive(store, [(ods, source_patient(ods)) for ods in TRUSTS])
        person = await store.read(lambda tx: person_of(tx, "rl4-p1"))
        assert person is not None
        first = await view.read(OPEN_ACCESS, "Patient", person)
        # the same records again change nothing: no new version
        await _arrive(store, [(ods, source_patient(ods)) for ods in TRUSTS])
        assert (await view.read(OPEN_ACCESS, "Patient", person)).version_id == first.version_id
        # every trust records the new surname: a new golden version, the old one still readable
        renamed = [
            (ods, {**source_patient(ods), "name": [{"family": "Cartwright-Hale", "given": ["Margaret"]}]})
            for ods in TRUSTS
        ]
        await _arrive(store, renamed)
        current = _json((await view.read(OPEN_ACCESS, "Patient", person)).body)
        history = await view.history(OPEN_ACCESS, "Patient", person)
        versions = [v.version_id for v in history.versions]
        assert versions == [str(n) for n in range(len(versions), 0, -1)]
        assert len(versions) >= 2
        old = _json((await view.vread(OPEN_ACCESS, "Patient", person, first.version_id)).body)
        assert old["meta"]["versionId"] == first.version_id
        assert old["name"][0]["family"] == "Cartwright"
        assert current["name"][0]["family"] == "Cartwright-Hale"
        with pytest.raises(ResourceNotFound):
            await view.vread(OPEN_ACCESS, "Patient", person, "99")
