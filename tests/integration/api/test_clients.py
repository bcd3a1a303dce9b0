"""Real FHIR clients (fhirpy, fhirclient) against the endpoint served by uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from bcconnect.config import ApiSettings, Settings, StoreSettings
from bcconnect.store import ResourceWrite, open_store, put_resources
from support.loopback import serving_in_thread

NHS = "https://fhir.nhs.uk/Id/nhs-number"


@pytest.fixture
def base_url(tmp_path: Path, test_record: list[ResourceWrite]) -> Iterator[str]:
    """Seed a SQLite store, serve it with uvicorn in a thread on a free loopback port, stop it afterwards."""
    url = f"sqlite:///{tmp_path / 'store.db'}"

    async def seed() -> None:
        async with open_store(url) as store:
            await store.write(lambda tx: put_resources(tx, test_record))

    anyio.run(seed)
    with serving_in_thread(
        lambda port: Settings(
            store=StoreSettings(url=url), api=ApiSettings(host="127.0.0.1", port=port, default_count=5, max_count=50)
        )
    ) as base:
        yield base


@pytest.mark.anyio
async def test_fhirpy_reads_searches_and_pages(base_url: str) -> None:
    """fhirpy's async client: search by identifier, read, and fetch_all following next links."""
    from fhirpy import AsyncFHIRClient

    client = AsyncFHIRClient(base_url)
    found = await client.resources("Patient").search(identifier=f"{NHS}|9000000009").fetch()
    assert [p["id"] for p in found] == ["p1"]
    patient = await client.reference("Patient", "p1").to_resource()
    assert patient["name"][0]["family"] == "Smith"
    observations = await client.resources("Observation").search(subject="Patient/p1").limit(5).fetch_all()
    assert sorted(o["id"] for o in observations) == sorted(f"o{i}" for i in range(1, 13))
    assert await client.resources("Observation").search(patient="p1").count() == 12


@pytest.mark.anyio
async def test_fhirclient_reads_searches_and_pages(base_url: str) -> None:
    """fhirclient (sync, run in a thread) parses our CapabilityStatement, reads, searches and pages."""

    def run() -> tuple[Any, list[str], list[str], Any]:
        from fhirclient import client as fhir_client
        from fhirclient.models.observation import Observation
        from fhirclient.models.patient import Patient

        smart = fhir_client.FHIRClient(settings={"app_id": "bcconnect-test", "api_base": base_url + "/"})
        patient = Patient.read("p2", smart.server)
        by_identifier = list(
            Patient.where(struct={"identifier": f"{NHS}|9000000009"}).perform_resources_iter(smart.server)
        )
        paged = Observation.where(struct={"subject": "Patient/p1", "_count": "5"}).perform_resources_iter(smart.server)
        statement = smart.server.capabilityStatement  # parsed by fhirclient's strict R4 model
        return patient, [p.id for p in by_identifier], [o.id for o in paged], statement

    patient, by_identifier, paged, statement = await anyio.to_thread.run_sync(run)
    assert statement.fhirVersion == "4.0.1"
    assert any(r.type == "Observation" for r in statement.rest[0].resource)
    assert patient.name[0].family == "Brown"
    assert by_identifier == ["p1"]
    assert sorted(paged) == sorted(f"o{i}" for i in range(1, 13))


@pytest.mark.anyio
async def test_clients_read_a_resource_and_its_provenance(base_url: str) -> None:
    """fhirpy finds an Observation with ``_revinclude=Provenance:target`` and reads the Provenance it names;
    fhirclient parses both into its typed models (its strict parser checks the composed Provenance's shape)."""
    from fhirpy import AsyncFHIRClient

    client = AsyncFHIRClient(base_url)
    bundle = await client.resources("Observation").search(_id="o1").revinclude("Provenance", "target").fetch_raw()
    kinds = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]]
    assert kinds == [("Observation", "match"), ("Provenance", "include")]
    provenance = bundle["entry"][1]["resource"]
    assert provenance["target"][0].reference == "Observation/o1/_history/1"
    read_back = await client.reference("Provenance", provenance["id"]).to_resource()
    assert read_back["recorded"] == bundle["entry"][0]["resource"]["meta"]["lastUpdated"]

    def run() -> tuple[str, str]:
        from fhirclient import client as fhir_client
        from fhirclient.models.observation import Observation
        from fhirclient.models.provenance import Provenance

        smart = fhir_client.FHIRClient(settings={"app_id": "bcconnect-test", "api_base": base_url + "/"})
        search = Observation.where(struct={"_id": "o1", "_revinclude": "Provenance:target"})
        typed = [e.resource for bundle in search.perform_iter(smart.server) for e in bundle.entry or []]
        provenances = [r for r in typed if isinstance(r, Provenance)]
        assert len(provenances) == 1
        again = Provenance.read(provenances[0].id, smart.server)
        return again.target[0].reference, again.agent[-1].type.coding[0].code

    target, kind = await anyio.to_thread.run_sync(run)
    assert (target, kind) == ("Observation/o1/_history/1", "assembler")
