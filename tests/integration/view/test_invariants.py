"""The person-centred view keeps FHIR's own rules over a whole demo store, on SQLite and PostgreSQL.

Four sandbox trusts are synced into a fresh store by the real ingest pipeline; the invariant walk
(``tests/support/view_walk.py``) then reads everything through the API in-process and checks read ⇔ search,
references, includes, chains and the whole person from any id. A second test injects violations into a
store (a dangling reference, a lost index row, a lost alias) and proves the walk reports each of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bcconnect.adapters import Page, RawRecord
from bcconnect.api import create_app
from bcconnect.config import AdapterConfig, FetchSettings, Settings, SourceKind
from bcconnect.identity import link_patients
from bcconnect.ingest import process_page, sync_adapters
from bcconnect.mapping import load_mapping_set
from bcconnect.store import (
    ResourceWrite,
    Store,
    count_open_quarantine,
    iter_current,
    open_store,
    put_resources,
    resource_types,
)
from bcconnect.view import View
from bcconnect_sandbox import SandboxSettings, running_sandboxes
from support.postgres_schema import postgres_schema_url
from support.sandbox_world import world_adapters
from support.view_walk import Get, parse, walk

pytestmark = pytest.mark.anyio

PERSONS = 14


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-scoped, so the demo store below is built once per backend."""
    return "asyncio"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url_module(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty store for the whole module: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('walk-db') / 'store.db'}"
        return
    yield from postgres_schema_url()


async def _ids(store: Store) -> dict[str, list[str]]:
    async def every(rtype: str) -> list[str]:
        out: list[str] = []
        while True:
            after = out[-1] if out else ""
            page = await store.read(lambda tx, after=after: iter_current(tx, rtype, after_id=after, limit=1000))
            out += [r.id for r in page]
            if len(page) < 1000:
                return out

    types = await store.read(resource_types)
    return {t: await every(t) for t in types}


def _getter(client: httpx.AsyncClient) -> Get:
    async def get(path: str, params: Sequence[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
        response = await client.get(path, params=list(params))
        return response.status_code, parse(response.content)

    return get


@pytest.fixture(scope="module")
async def demo_store(
    store_url_module: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Store, httpx.AsyncClient]]:
    """A store holding four trusts' records of a small synthetic population, and an in-process API client."""
    tmp = tmp_path_factory.mktemp("walk")
    drop = tmp / "drop"
    drop.mkdir()
    async with running_sandboxes(SandboxSettings(density=0, persons=PERSONS, seed=5), hl7_drop_dir=drop) as world:
        configs, environ = world_adapters(world, hl7_drop_dir=drop)
        fast = FetchSettings(page_size=100, backoff_base_seconds=0.01, backoff_max_seconds=0.2, max_retries=10)
        configs = [replace(c, fetch=fast) for c in configs]
        await world.deliver_hl7()
        settings = Settings()
        async with open_store(store_url_module) as store:
            reports = await sync_adapters(configs, settings=settings, store=store, environ=environ)
            assert all(r.ok for r in reports), [str(r) for r in reports]
            app = create_app(settings, View(store, max_count=1000))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver/fhir") as client:
                yield store, client


async def test_every_invariant_holds_over_the_demo_store(demo_store: tuple[Store, httpx.AsyncClient]) -> None:
    store, client = demo_store
    ids = await _ids(store)
    assert {"Patient", "Encounter", "Condition", "Observation"} <= set(ids)
    violations = await walk(_getter(client), ids)
    assert violations == []


async def test_source_ids_and_golden_ids_give_the_same_person(demo_store: tuple[Store, httpx.AsyncClient]) -> None:
    """The usual flow — find by NHS number, take the first hit, ask for its record — shows the whole record."""
    _, client = demo_store
    patients = parse((await client.get("/Patient", params={"_count": "1000"})).content)
    golden = next(
        e["resource"] for e in patients["entry"] if len(e["resource"].get("link") or ()) > 1 and "golden" in str(e)
    )
    nhs = next(i["value"] for i in golden["identifier"] if i["system"] == "https://fhir.nhs.uk/Id/nhs-number")
    found = parse(
        (await client.get("/Patient", params={"identifier": f"https://fhir.nhs.uk/Id/nhs-number|{nhs}"})).content
    )
    ids = [e["resource"]["id"] for e in found["entry"]]
    assert golden["id"] in ids
    assert len(ids) > 1  # the source records too
    only = parse(
        (
            await client.get(
                "/Patient",
                params={
                    "identifier": f"https://fhir.nhs.uk/Id/nhs-number|{nhs}",
                    "_tag": "https://bcconnect.nhs.uk/CodeSystem/record-kind|golden",
                },
            )
        ).content
    )
    assert [e["resource"]["id"] for e in only["entry"]] == [golden["id"]]
    sizes = set()
    for pid in ids:
        everything = parse((await client.get(f"/Patient/{pid}/$everything", params={"_count": "1000"})).content)
        entries = everything["entry"]
        assert entries[0]["resource"]["id"] == golden["id"]  # the person's golden Patient leads
        sizes.add(len(entries))
    assert len(sizes) == 1
    assert sizes.pop() > len(ids) + 1  # clinical data, not just Patients and an Organization


# --- the walk can fail -------------------------------------------------------------------------------------


def _write(body: dict[str, Any], compartment: str | None = None, source: str = "t") -> ResourceWrite:
    return ResourceWrite(body["resourceType"], body["id"], orjson.dumps(body), source=source, compartment=compartment)


def _patient(pid: str, ods: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"tag": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "code": ods}]},
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}],
        "name": [{"family": "Cartwright", "given": ["Margaret"]}],
        "gender": "female",
        "birthDate": "1950-03-14",
    }


def _encounter(eid: str, pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": "2024-01-02T10:00:00Z"},
    }


async def _load_small(store: Store) -> None:
    """One person known to two trusts, one Encounter at each."""

    def load(tx: Any) -> None:
        for ods, pid in (("RL4", "a1"), ("RBK", "b1")):
            put_resources(tx, [_write(_patient(pid, ods), pid, ods), _write(_encounter(f"e-{pid}", pid), pid, ods)])
            link_patients(tx, [_patient(pid, ods)], ods_code=ods)

    await store.write(load)


async def _violations(store: Store) -> list[str]:
    app = create_app(Settings(), View(store, max_count=1000))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver/fhir") as client:
        return await walk(_getter(client), await _ids(store))


async def test_the_walk_reports_injected_violations(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'clean.db'}") as clean:
        await _load_small(clean)
        assert await _violations(clean) == []

    async with open_store(f"sqlite:///{tmp_path / 'broken.db'}") as broken:
        await _load_small(broken)

        def inject(tx: Any) -> None:
            # a clinical resource pointing at a Patient that does not exist
            put_resources(tx, [_write(_encounter("e-orphan", "nobody"), "nobody")])
            # a lost index row: an Encounter's date is no longer searchable
            tx.execute("DELETE FROM idx_date WHERE res_type = 'Encounter' AND param = 'date'")
            # a lost alias: one trust's record no longer answers as the person
            tx.execute("DELETE FROM reference_alias WHERE member_id = 'b1'")

        await broken.write(inject)
        found = await _violations(broken)
    text = "\n".join(found)
    assert "→ Patient/nobody does not resolve" in text
    assert "Encounter?[('date'" in text
    assert "refer link" in text
    assert "Encounter?patient=" in text


# --- a FHIR source whose Patients fail mapping -------------------------------------------------------------

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"


def _raw(resource: dict[str, Any]) -> RawRecord:
    key = f"{resource['resourceType']}/{resource['id']}"
    return RawRecord(str(resource["resourceType"]), key, orjson.dumps(resource), "1", "2026-11-01T10:00:00Z")


async def test_a_source_whose_patients_fail_mapping_leaves_nothing_dangling(store_url: str) -> None:
    """Five Patients arrive without the identifier the mapping needs (quarantined), one arrives whole; each has a
    Condition. The page reports the five Conditions held, and the view serves nothing pointing at a Patient
    that does not exist: the invariant walk over the store finds no violation."""
    config = AdapterConfig(name="rl4", ods_code="RL4", kind=SourceKind.FHIR_API, mapping_set="rl4-fhir")
    mapping_set = load_mapping_set(MAPPINGS / "rl4-fhir")
    golden = MAPPINGS / "rl4-fhir" / "golden"
    patient: dict[str, Any] = orjson.loads((golden / "patient-verified.json").read_bytes())
    # the GP practice comes from the source's Organization feed, which this one page does not carry
    patient.pop("generalPractitioner", None)
    patient.pop("managingOrganization", None)
    condition: dict[str, Any] = orjson.loads((golden / "condition.json").read_bytes())
    records = []
    for n in range(6):
        pid = f"{patient['id']}-{n}"
        body = {**patient, "id": pid} if n == 0 else {**patient, "id": pid, "identifier": []}
        records += [
            _raw(body),
            _raw({**condition, "id": f"{condition['id']}-{n}", "subject": {"reference": f"Patient/{pid}"}}),
        ]
    async with open_store(store_url) as store:
        counts = await process_page(Page(tuple(records), (), "c1"), config=config, store=store, mapping_set=mapping_set)
        assert (counts.quarantined_patients, counts.held) == (5, 5)
        assert await store.read(lambda tx: count_open_quarantine(tx, adapter="rl4")) == 5
        ids = await _ids(store)
        assert len(ids["Condition"]) == 1  # only the whole Patient's Condition is in the view
        assert await _violations(store) == []
