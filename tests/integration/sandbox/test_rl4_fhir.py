"""RL4's FHIR server over real HTTP: OAuth, paging, _lastUpdated, history with deletes, reads."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bcconnect_sandbox import SandboxSettings, running_sandboxes
from bcconnect_sandbox.testing import bearer as token
from bcconnect_sandbox.testing import walk

pytestmark = pytest.mark.anyio
SETTINGS = SandboxSettings(density=0, persons=150, seed=7, trusts=("RL4",))


async def test_token_is_required_and_checked() -> None:
    """No token, a wrong secret or an unknown token → 401; Basic auth and form auth both work."""
    async with running_sandboxes(SETTINGS) as world, httpx.AsyncClient() as client:
        base = world.base_url("RL4")
        unauth = await client.get(f"{base}/fhir/R4/Patient")
        assert unauth.status_code == 401
        assert unauth.headers["www-authenticate"].startswith("Bearer")
        assert unauth.json()["resourceType"] == "OperationOutcome"
        bad = await client.post(
            f"{base}/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": "bcconnect", "client_secret": "nope"},
        )
        assert bad.status_code == 401
        cred = world.credentials("RL4")
        assert cred.client_id is not None
        assert cred.client_secret is not None
        basic = await client.post(
            f"{base}/oauth2/token", data={"grant_type": "client_credentials"}, auth=(cred.client_id, cred.client_secret)
        )
        assert basic.status_code == 200
        assert basic.json()["token_type"] == "Bearer"
        stale = await client.get(f"{base}/fhir/R4/Patient", headers={"Authorization": "Bearer made-up"})
        assert stale.status_code == 401
        headers = await token(client, world, "RL4")
        assert (await client.get(f"{base}/fhir/R4/Patient", headers=headers)).status_code == 200
        world.expire_tokens()
        assert (await client.get(f"{base}/fhir/R4/Patient", headers=headers)).status_code == 401


async def test_paging_returns_every_patient_once_in_lastupdated_order() -> None:
    """Next links walk all patients, each once, sorted by meta.lastUpdated, with versionId set."""
    async with running_sandboxes(SETTINGS) as world, httpx.AsyncClient() as client:
        headers = await token(client, world, "RL4")
        url = f"{world.base_url('RL4')}/fhir/R4/Patient?_sort=_lastUpdated&_count=17"
        pages = await walk(client, url, headers)
        resources = [e["resource"] for p in pages for e in p["entry"]]
        assert len(pages) > 2
        assert all(p["type"] == "searchset" for p in pages)
        ids = [r["id"] for r in resources]
        assert len(ids) == len(set(ids))
        stamps = [r["meta"]["lastUpdated"] for r in resources]
        assert stamps == sorted(stamps)
        assert all(r["meta"]["versionId"] == "1" for r in resources)
        truth = world.ground_truth_rows()
        assert set(ids) == {row[1] for row in truth if row[0] == "RL4"}


async def test_lastupdated_filter_and_count() -> None:
    """gt excludes the instant itself, ge includes it; _count bounds the page."""
    async with running_sandboxes(SETTINGS) as world, httpx.AsyncClient() as client:
        headers = await token(client, world, "RL4")
        fhir = f"{world.base_url('RL4')}/fhir/R4"
        first = (await client.get(f"{fhir}/Encounter?_count=5", headers=headers)).json()
        assert len(first["entry"]) == 5
        pivot = first["entry"][2]["resource"]["meta"]["lastUpdated"]
        gt = await walk(client, f"{fhir}/Encounter?_lastUpdated=gt{pivot}&_count=50", headers)
        ge = await walk(client, f"{fhir}/Encounter?_lastUpdated=ge{pivot}&_count=50", headers)
        gt_ids = [e["resource"]["id"] for p in gt for e in p["entry"]]
        ge_ids = [e["resource"]["id"] for p in ge for e in p["entry"]]
        assert ge_ids[0] == first["entry"][2]["resource"]["id"]
        assert ge_ids[1:] == gt_ids
        bad = await client.get(f"{fhir}/Encounter?_sort=-date", headers=headers)
        assert bad.status_code == 400


async def test_changes_deletes_and_reads_after_time_moves() -> None:
    """After advance: history shows new versions and DELETEs; read of a deleted resource → 410."""
    async with (
        running_sandboxes(SandboxSettings(density=0, persons=400, seed=3, trusts=("RL4",))) as world,
        httpx.AsyncClient() as client,
    ):
        headers = await token(client, world, "RL4")
        fhir = f"{world.base_url('RL4')}/fhir/R4"
        start = world.now
        for _ in range(4):
            await world.advance(days=7)
        since = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        deletes: list[tuple[str, dict[str, Any]]] = []
        updates: list[tuple[str, dict[str, Any]]] = []
        for kind in ("Condition", "Observation", "Patient", "Encounter", "Appointment"):
            pages = await walk(client, f"{fhir}/{kind}/_history?_since={since}&_count=50", headers)
            for entry in (e for p in pages for e in p["entry"]):
                (deletes if entry["request"]["method"] == "DELETE" else updates).append((kind, entry))
        assert deletes
        assert updates
        kind, gone = deletes[0]
        read = await client.get(f"{fhir}/{gone['request']['url']}", headers=headers)
        assert read.status_code == 410
        search = await walk(client, f"{fhir}/{kind}?_count=100", headers)
        assert gone["request"]["url"].split("/")[1] not in {e["resource"]["id"] for p in search for e in p["entry"]}
        _, changed = updates[0]
        current = await client.get(f"{fhir}/{changed['request']['url']}", headers=headers)
        assert current.status_code == 200
        assert int(current.json()["meta"]["versionId"]) >= int(changed["resource"]["meta"]["versionId"])
        missing = await client.get(f"{fhir}/Patient/RW000000000", headers=headers)
        assert missing.status_code == 404


async def test_resource_changed_during_paging_appears_on_two_pages() -> None:
    """A resource updated between page 1 and page 2 shows up again later (paging by position)."""
    async with running_sandboxes(SETTINGS) as world, httpx.AsyncClient() as client:
        headers = await token(client, world, "RL4")
        fhir = f"{world.base_url('RL4')}/fhir/R4"
        first = (await client.get(f"{fhir}/Patient?_count=10&_sort=_lastUpdated", headers=headers)).json()
        changed_id = first["entry"][0]["resource"]["id"]
        state = world.states["RL4"]
        version = state.read(changed_id)
        assert version is not None
        assert version.record is not None
        state.put(version.record, world.now)  # a new version, as if a clerk saved it
        url = next(link["url"] for link in first["link"] if link["relation"] == "next")
        rest = await walk(client, url, headers)
        later = [e["resource"] for p in rest for e in p["entry"] if e["resource"]["id"] == changed_id]
        assert len(later) == 1
        assert later[0]["meta"]["versionId"] == "2"


async def test_ids_only_sweep_and_static_resources() -> None:
    """_elements=id returns subsetted ids; Organization and Practitioner are served; unknown type → 404."""
    async with running_sandboxes(SETTINGS) as world, httpx.AsyncClient() as client:
        headers = await token(client, world, "RL4")
        fhir = f"{world.base_url('RL4')}/fhir/R4"
        pages = await walk(client, f"{fhir}/Patient?_elements=id&_count=200", headers)
        entry = pages[0]["entry"][0]["resource"]
        assert set(entry) == {"resourceType", "id", "meta"}
        orgs = await walk(client, f"{fhir}/Organization", headers)
        assert any(e["resource"]["id"] == "RL4" for p in orgs for e in p["entry"])
        assert (await client.get(f"{fhir}/Practitioner", headers=headers)).status_code == 200
        assert (await client.get(f"{fhir}/Basic", headers=headers)).status_code == 404
        meta = await client.get(f"{fhir}/metadata")
        assert meta.json()["fhirVersion"] == "4.0.1"
