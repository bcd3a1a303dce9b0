"""Provenance composed on read, through the real ingest pipeline and the API (SQLite and PostgreSQL).

A FHIR source delivers a Patient and a Condition, then a changed Condition: each version has its own
Provenance (CREATE, then UPDATE) naming the trust, bcconnect, the source record and its version at the trust,
and the mapping set; the first version's Provenance stays readable by id; searches find the current one; the
golden Patient's Provenance names its source Patient; every composed Provenance is a valid FHIR R4 Provenance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bcconnect.adapters import Page, RawRecord
from bcconnect.api import create_app
from bcconnect.config import AdapterConfig, Settings, SourceKind
from bcconnect.ingest import process_page
from bcconnect.mapping import load_mapping_set
from bcconnect.store import Store, open_store
from bcconnect.view import View, provenance_id

pytestmark = pytest.mark.anyio

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


def _raw(resource: dict[str, Any], version: str) -> RawRecord:
    key = f"{resource['resourceType']}/{resource['id']}"
    return RawRecord(str(resource["resourceType"]), key, orjson.dumps(resource), version, f"2026-11-0{version}T10:00Z")


@pytest.fixture
async def loaded(store_url: str) -> AsyncIterator[tuple[Store, httpx.AsyncClient, dict[str, Any]]]:
    config = AdapterConfig(name="rl4", ods_code="RL4", kind=SourceKind.FHIR_API, mapping_set="rl4-fhir")
    mapping_set = load_mapping_set(MAPPINGS / "rl4-fhir")
    golden = MAPPINGS / "rl4-fhir" / "golden"
    patient: dict[str, Any] = orjson.loads((golden / "patient-verified.json").read_bytes())
    patient.pop("generalPractitioner", None)
    patient.pop("managingOrganization", None)
    condition: dict[str, Any] = orjson.loads((golden / "condition.json").read_bytes())
    condition["subject"] = {"reference": f"Patient/{patient['id']}"}
    trust = {"resourceType": "Organization", "id": "RL4", "identifier": [{"system": ODS, "value": "RL4"}],
             "name": "Wolverhampton"}  # fmt: skip
    async with open_store(store_url) as store:
        first = Page((_raw(trust, "1"), _raw(patient, "1"), _raw(condition, "1")), (), "c1")
        await process_page(first, config=config, store=store, mapping_set=mapping_set)
        changed = {**condition, "note": [{"text": "reviewed"}]}
        await process_page(Page((_raw(changed, "2"),), (), "c2"), config=config, store=store, mapping_set=mapping_set)
        app = create_app(Settings(), View(store))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver/fhir") as client:
            yield store, client, {"patient": patient, "condition": condition, "set": mapping_set}


def _valid(resource: dict[str, Any]) -> None:
    from fhir.resources.R4B.provenance import Provenance

    Provenance.model_validate(resource)


async def test_each_version_has_its_provenance(loaded: tuple[Store, httpx.AsyncClient, dict[str, Any]]) -> None:
    _, client, facts = loaded
    found = (await client.get("/Condition", params={"_revinclude": "Provenance:target"})).json()
    condition = next(e["resource"] for e in found["entry"] if e["resource"]["resourceType"] == "Condition")
    current = next(e["resource"] for e in found["entry"] if e["resource"]["resourceType"] == "Provenance")
    cid = condition["id"]
    assert condition["meta"]["versionId"] == "2"
    assert current["id"] == provenance_id("Condition", cid, 2)
    _valid(current)
    assert current["target"] == [{"reference": f"Condition/{cid}/_history/2"}]
    assert current["recorded"] == condition["meta"]["lastUpdated"]
    assert current["activity"]["coding"][0]["code"] == "UPDATE"
    assert current["policy"] == [f"https://bcconnect.nhs.uk/MappingSet/rl4-fhir|{facts['set'].version}"]
    author, engine = current["agent"]
    assert author["type"]["coding"][0]["code"] == "author"
    assert author["who"]["identifier"] == {"system": ODS, "value": "RL4"}
    trust = (await client.get(f"/{author['who']['reference']}")).json()  # the trust's Organization resolves
    assert trust["identifier"][0]["value"] == "RL4"
    assert engine["type"]["coding"][0]["code"] == "assembler"
    assert engine["who"]["reference"] == "#engine"
    assert current["contained"][0]["resourceType"] == "Device"
    (entity,) = current["entity"]
    assert entity["role"] == "source"
    key = f"Condition/{facts['condition']['id']}"
    assert entity["what"]["identifier"] == {"system": "https://fhir.rl4.nhs.uk", "value": key}
    assert entity["extension"][0]["valueString"] == "2"  # the trust's version of the record
    # the first version's Provenance: still there by id, a CREATE, no longer the trust's current version
    first_id = provenance_id("Condition", cid, 1)
    first = (await client.get(f"/Provenance/{first_id}")).json()
    _valid(first)
    assert first["activity"]["coding"][0]["code"] == "CREATE"
    assert first["target"] == [{"reference": f"Condition/{cid}/_history/1"}]
    assert "extension" not in first["entity"][0]
    assert (await client.get(f"/Provenance/{first_id}/_history/1")).status_code == 200
    assert (await client.get(f"/Provenance/{first_id}/_history/2")).status_code == 404
    by_id = (await client.get("/Provenance", params={"_id": first_id})).json()
    assert [e["resource"]["id"] for e in by_id["entry"]] == [first_id]
    by_target = (await client.get("/Provenance", params={"target": f"Condition/{cid}"})).json()
    assert [e["resource"]["id"] for e in by_target["entry"]] == [current["id"]]
    # a versioned target names that version's Provenance, not the current one's
    for version, wanted in (("1", first_id), ("2", current["id"])):
        versioned = {"target": f"Condition/{cid}/_history/{version}"}
        found_version = (await client.get("/Provenance", params=versioned)).json()
        assert [e["resource"]["id"] for e in found_version["entry"]] == [wanted]
    assert (await client.get("/Provenance", params={"target": "Nothing/x/_history/1"})).status_code == 400
    included = (await client.get("/Provenance", params={"_id": current["id"], "_include": "Provenance:target"})).json()
    assert {e["resource"]["resourceType"] for e in included["entry"]} == {"Provenance", "Condition"}
    # an id that names no version is absent, never an error
    for missing in (provenance_id("Condition", cid, 3), "obs-nothing-1", "nonsense"):
        assert (await client.get(f"/Provenance/{missing}")).status_code == 404


async def test_a_golden_patients_provenance_names_its_sources(
    loaded: tuple[Store, httpx.AsyncClient, dict[str, Any]],
) -> None:
    _, client, _facts = loaded
    golden_tag = "https://bcconnect.nhs.uk/CodeSystem/record-kind|golden"
    found = (await client.get("/Patient", params={"_tag": golden_tag, "_revinclude": "Provenance:target"})).json()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in found["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    (golden,) = by_type["Patient"]
    # the golden Patient's and its source Patient's (any id of the person is the person)
    provenance = {p["target"][0]["reference"].split("/_history")[0]: p for p in by_type["Provenance"]}
    source = next(link["other"]["reference"] for link in golden["link"] if link["type"] == "seealso")
    assert set(provenance) == {f"Patient/{golden['id']}", source}
    own = provenance[f"Patient/{golden['id']}"]
    _valid(own)
    assert [a["type"]["coding"][0]["code"] for a in own["agent"]] == ["assembler"]
    assert own["policy"][0].startswith("https://bcconnect.nhs.uk/IdentityRules|")
    (entity,) = own["entity"]
    assert entity["what"]["reference"].startswith(f"{source}/_history/")
    assert entity["agent"][0]["who"]["identifier"]["value"] == "RL4"
    assert (await client.get(f"/{entity['what']['reference']}")).status_code == 200
    by_patient = (await client.get("/Provenance", params={"patient": source})).json()
    assert {e["resource"]["id"] for e in by_patient["entry"]} == {p["id"] for p in provenance.values()}


async def test_provenance_pages_cross_types_without_loss(
    loaded: tuple[Store, httpx.AsyncClient, dict[str, Any]],
) -> None:
    """One Provenance per page over a search spanning Condition, Organization and Patient: every page link
    leads on, nothing is repeated or lost, and the first page's total counts them all."""
    _, client, _facts = loaded
    everything = (await client.get("/Provenance", params={"_count": "100"})).json()
    expected = [e["resource"]["id"] for e in everything["entry"]]
    assert len({i.split("-")[0] for i in expected}) == 3  # con, org, pat
    pages: list[list[str]] = []
    response = (await client.get("/Provenance", params={"_count": "1"})).json()
    assert response["total"] == len(expected)
    while True:
        pages.append([e["resource"]["id"] for e in response.get("entry", [])])
        following = next((link["url"] for link in response["link"] if link["relation"] == "next"), None)
        if following is None:
            break
        response = (await client.get(following)).json()
    assert [i for page in pages for i in page] == expected
    assert all(len(page) == 1 for page in pages)
    counted = (await client.get("/Provenance", params={"_summary": "count"})).json()
    assert counted["total"] == len(expected)


async def test_everything_says_how_to_get_provenance(loaded: tuple[Store, httpx.AsyncClient, dict[str, Any]]) -> None:
    """``$everything`` does not add Provenance; asking it for only Provenance is a 400 that says where it is,
    never an empty answer."""
    _, client, _facts = loaded
    patients = (await client.get("/Patient")).json()["entry"]
    pid = next(e["resource"]["id"] for e in patients if "golden" not in str(e["resource"].get("meta")))
    response = await client.get(f"/Patient/{pid}/$everything", params={"_type": "Provenance"})
    assert response.status_code == 400
    assert "_revinclude=Provenance:target" in response.json()["issue"][0]["diagnostics"]
    # the rest of $everything is as it was
    assert (await client.get(f"/Patient/{pid}/$everything", params={"_type": "Condition"})).status_code == 200


async def test_parameters_provenance_does_not_offer(loaded: tuple[Store, httpx.AsyncClient, dict[str, Any]]) -> None:
    """An official Provenance parameter we do not offer is a 400, or ignored with a warning (and left out of the
    self link) when the client asks for lenient handling."""
    _, client, _facts = loaded
    strict = await client.get("/Provenance", params={"entity": "Patient/x"})
    assert strict.status_code == 400
    lenient = await client.get(
        "/Provenance", params={"entity": "Patient/x", "_count": "100"}, headers={"prefer": "handling=lenient"}
    )
    assert lenient.status_code == 200
    body = lenient.json()
    assert "entity" not in body["link"][0]["url"]
    modes = [e["search"]["mode"] for e in body["entry"]]
    assert modes.count("outcome") == 1
    assert modes.count("match") == body["total"] > 0
