"""Onboarding a fifth trust with only an adapter.toml and the generic mapping set.

A US-Core-shaped FHIR R4 server (no NHS numbers, other identifier systems, extensions, RxNorm/CVX/ICD-10-CM;
its FHIR base is ``/api/fhir`` and its token URL comes from SMART discovery) is served on loopback next to a
sandbox trust. Proved: every offered clinical type is fetched and stored or reported; no Patient is
quarantined; each source patient becomes exactly one person, linked to nothing from the sandbox population;
``Patient/$everything`` over the real API equals the source patient's data; a persistent fault on one type
leaves the other types current; and a mapping fix followed by ``remap`` leaves no open quarantine.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from tests.support.us_core_source import MRN_SYSTEM, UNMAPPED_TYPES, UsCoreServer, serving, us_core_population

from bcconnect.api import create_app
from bcconnect.config import AdapterConfig, AuthMode, AuthSettings, PathSettings, Settings, load_adapter
from bcconnect.fhir.constants import NON_UK_TERMINOLOGY, source_system
from bcconnect.fhir.ids import resource_id
from bcconnect.identity import person_of, person_patients
from bcconnect.ingest import count_held, remap_adapter, sync_adapters
from bcconnect.mapping import load_mapping_set
from bcconnect.store import Store, count_open_quarantine, iter_current, open_store, read_current
from bcconnect.view import View
from bcconnect_sandbox import SandboxSettings, running_sandboxes

from .conftest import MAPPINGS, adapters_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PERSONS = 8
SYSTEM = source_system("XYZ")
#: referenced by the patients' records but not in their compartment ($everything may add them as includes)
SHARED_TYPES = {"Organization", "Location", "Practitioner", "PractitionerRole", "Medication"}
#: R4's Patient CompartmentDefinition leaves Device out (a device is its own compartment), so $everything does
NOT_IN_COMPARTMENT = {"Device"}


def _adapter_file(directory: Path, server: UsCoreServer, mapping_dir: Path | None = None) -> AdapterConfig:
    """Everything an engineer writes to add the trust: one adapter.toml."""
    folder = directory / "adapters" / "xyz"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter.toml").write_text(
        f"""# Example Valley Medical Center — a US vendor's FHIR R4 API
name = "xyz"
ods_code = "XYZ"
kind = "fhir_api"
base_url = "{server.fhir_base}"
mapping_set = "uk-core-generic"

[auth]
type = "oauth2_client_credentials"
client_id = "{server.client_id}"
client_secret_env = "XYZ_CLIENT_SECRET"

[identifiers]
mrn_system = "{MRN_SYSTEM}"

[fetch]
backoff_base_seconds = 0.01
backoff_max_seconds = 0.05
max_retries = 2
"""
    )
    return load_adapter(folder / "adapter.toml")


def _engine(tmp_path: Path, mappings: Path = MAPPINGS) -> Settings:
    return Settings(root=tmp_path, paths=PathSettings(mappings_dir=str(mappings)))


async def _stored(store: Store, resource_type: str, adapter: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = ""
    while batch := await store.read(
        lambda tx, after=after: iter_current(tx, resource_type=resource_type, after_id=after, source=adapter)  # type: ignore[misc]
    ):
        out += [orjson.loads(s.body) for s in batch if s.body is not None]
        after = batch[-1].id
    return out


async def _everything(client: httpx.AsyncClient, patient_id: str) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    url: str | None = f"/Patient/{patient_id}/$everything?_count=200"
    while url is not None:
        answer = await client.get(url)
        assert answer.status_code == 200, answer.text
        bundle = answer.json()
        resources += [e["resource"] for e in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
    return resources


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


async def test_a_us_core_source_onboards_with_an_adapter_file_and_the_generic_set(store: Store, tmp_path: Path) -> None:
    data = us_core_population(PERSONS)
    async with (
        serving(UsCoreServer(data)) as server,
        running_sandboxes(SandboxSettings(density=0, persons=30, seed=5, trusts=("RL4",))) as world,
    ):
        configs, environ = adapters_for(world, tmp_path)
        xyz = _adapter_file(tmp_path, server)
        environ = {**environ, "XYZ_CLIENT_SECRET": server.client_secret}
        sandbox_report, report = await sync_adapters(
            [configs["RL4"], xyz], settings=_engine(tmp_path), store=store, environ=environ
        )
        assert sandbox_report.status == "OK", sandbox_report.as_dict()

        # every offered clinical type fetched and stored, or reported with its count; nothing quarantined
        assert report.status == "OK", str(report.as_dict())
        assert report.balanced
        assert (report.quarantined, report.quarantined_patients, report.held) == (0, 0, 0)
        assert report.offered_not_mapped == dict.fromkeys(UNMAPPED_TYPES, PERSONS)
        mapped = set(load_mapping_set(MAPPINGS / "uk-core-generic").record_types)
        for resource_type, resources in data.by_type.items():
            if resource_type in UNMAPPED_TYPES:
                continue
            assert resource_type in mapped
            stored = await _stored(store, resource_type, "xyz")
            assert sorted(r["meta"]["source"] for r in stored) == sorted(
                f"{SYSTEM}/{resource_type}/{r['id']}" for r in resources
            ), resource_type

        # identifiers, extensions, references and foreign codes kept as the issue asks
        patient_id = resource_id(SYSTEM, "Patient", "Patient/pt-1")
        patient = orjson.loads((await store.read(lambda tx: read_current(tx, "Patient", patient_id))).body)  # type: ignore[union-attr]
        systems = {i.get("system") for i in patient["identifier"]}
        assert {MRN_SYSTEM, "http://hl7.org/fhir/sid/us-ssn", "https://fhir.xyz.nhs.uk/Id/mrn"} <= systems
        assert {e["url"].rsplit("/", 1)[-1] for e in patient["extension"]} == {"us-core-race", "us-core-birthsex"}
        [request] = [
            r for r in await _stored(store, "MedicationRequest", "xyz") if r["meta"]["source"].endswith("/mr-0")
        ]
        assert request["reasonReference"] == [
            {"reference": f"Condition/{resource_id(SYSTEM, 'Condition', 'Condition/cond-0')}"}
        ]
        assert request["meta"]["profile"] == ["http://hl7.org/fhir/StructureDefinition/MedicationRequest"]
        assert any(t.get("code") == NON_UK_TERMINOLOGY and "rxnorm" in t["display"] for t in request["meta"]["tag"])

        # each source patient is exactly one person, alone in it (no false link to the sandbox population)
        persons = set()
        for n in range(PERSONS):
            pid = resource_id(SYSTEM, "Patient", f"Patient/pt-{n + 1}")
            person = await store.read(lambda tx, pid=pid: person_of(tx, pid))
            assert person is not None, f"pt-{n + 1} has no person"
            assert await store.read(lambda tx, person=person: person_patients(tx, person)) == [pid]
            persons.add(person)
        assert len(persons) == PERSONS

        # $everything over the real API equals the source patient's data
        view = View(store)
        app = create_app(Settings(auth=AuthSettings(mode=AuthMode.NONE)), view)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bcc/fhir") as client:
            for n in (0, PERSONS - 1):
                pid = resource_id(SYSTEM, "Patient", f"Patient/pt-{n + 1}")
                got = await _everything(client, pid)
                sources = {r.get("meta", {}).get("source") for r in got}
                own = {s for s in sources if s and s.startswith(SYSTEM) and s.split("/")[-2] not in SHARED_TYPES}
                expected = {f"{SYSTEM}/{r['resourceType']}/{r['id']}" for r in data.of_patient(f"pt-{n + 1}")}
                left_out = {*UNMAPPED_TYPES, *NOT_IN_COMPARTMENT}
                expected -= {f"{SYSTEM}/{t}/{r['id']}" for t in left_out for r in data.by_type.get(t, [])}
                assert own == expected, (sorted(own - expected), sorted(expected - own))
                assert not any(s and s.startswith(source_system("RL4")) for s in sources)

        # a persistent fault on one type leaves the others current
        server.broken = {"Immunization"}
        changed = data.by_type["MedicationRequest"][0]
        changed["status"] = "completed"
        changed["meta"] = {"versionId": "2", "lastUpdated": "2026-11-29T12:00:00.000Z"}
        immunization = data.by_type["Immunization"][0]
        immunization["status"] = "not-done"
        immunization["meta"] = {"versionId": "2", "lastUpdated": "2026-11-29T12:00:01.000Z"}
        [faulty] = await sync_adapters([xyz], settings=_engine(tmp_path), store=store, environ=environ)
        assert faulty.status == "FAILED"
        assert f"Immunization failed (HTTP 500 at {server.fhir_base}/Immunization" in (faulty.error or "")
        assert "MedicationRequest" not in (faulty.error or "")
        [request] = [
            r for r in await _stored(store, "MedicationRequest", "xyz") if r["meta"]["source"].endswith("/mr-0")
        ]
        assert request["status"] == "completed"  # the type after the broken one was read
        [stale] = [r for r in await _stored(store, "Immunization", "xyz") if r["meta"]["source"].endswith("/imm-0")]
        assert stale["status"] == "completed"  # not read while broken ...

        server.broken = set()
        [healed] = await sync_adapters([xyz], settings=_engine(tmp_path), store=store, environ=environ)
        assert healed.status == "OK", healed.as_dict()
        [fresh] = [r for r in await _stored(store, "Immunization", "xyz") if r["meta"]["source"].endswith("/imm-0")]
        assert fresh["status"] == "not-done"  # ... and resumed from its own cursor once the fault cleared


async def test_a_mapping_fix_then_remap_leaves_no_open_quarantine(store: Store, tmp_path: Path) -> None:
    """A broken Patient mapping quarantines every Patient (DEGRADED, clinical records held, none served);
    fixing the file and running remap takes them in, releases what was held and closes the quarantine."""
    mappings = tmp_path / "mappings"
    shutil.copytree(MAPPINGS / "uk-core-generic", mappings / "uk-core-generic")
    shutil.copytree(MAPPINGS / "_common", mappings / "_common")
    patient_file = mappings / "uk-core-generic" / "patient.yaml"
    good = patient_file.read_text()
    # the mistake an engineer makes: a conversion that fits one trust's data (here: a year as a number)
    patient_file.write_text(
        good + "      - {name: birth-date, target: birthDate, from: birthDate, fn: integer, required: true}\n"
    )
    data = us_core_population(4)
    async with serving(UsCoreServer(data)) as server:
        xyz = _adapter_file(tmp_path, server)
        environ = {"XYZ_CLIENT_SECRET": server.client_secret}
        [report] = await sync_adapters([xyz], settings=_engine(tmp_path, mappings), store=store, environ=environ)
    assert report.status == "DEGRADED"
    assert report.degraded is not None
    assert report.degraded.startswith("4 Patient record(s) quarantined (limit 0)")
    assert report.held > 0
    assert await store.read(lambda tx: count_open_quarantine(tx, "xyz")) == 4
    assert await _stored(store, "Condition", "xyz") == []  # held, never served without its Patient

    patient_file.write_text(good)
    remapped = await remap_adapter(xyz, store=store, mapping_set=load_mapping_set(mappings / "uk-core-generic"))
    assert remapped.failed == 0
    assert remapped.resolved == 4
    assert remapped.released == report.held
    assert await store.read(lambda tx: count_open_quarantine(tx, "xyz")) == 0
    assert await store.read(lambda tx: count_held(tx, "xyz")) == 0
    assert len(await _stored(store, "Condition", "xyz")) == 4


async def test_probe_lists_offered_mapped_and_what_a_sync_will_do(tmp_path: Path) -> None:
    """``bcconnect adapter probe xyz`` (the real command) reads the server's CapabilityStatement before any sync."""
    data = us_core_population(3)
    async with serving(UsCoreServer(data)) as server:
        _adapter_file(tmp_path, server)
        config = tmp_path / "bcconnect.toml"
        config.write_text(f'[paths]\nadapters_dir = "adapters"\nmappings_dir = "{MAPPINGS.as_posix()}"\n')
        env = {**os.environ, "XYZ_CLIENT_SECRET": server.client_secret}
        command = [sys.executable, "-m", "bcconnect.cli.main", "--config", str(config), "adapter", "probe", "xyz"]
        shown = await anyio.run_process([*command, "--json"], env=env, check=False)
        text = await anyio.run_process(command, env=env, check=False)
        missing = await anyio.run_process([*command[:-1], "nope"], env=env, check=False)
    assert shown.returncode == 0, shown.stderr.decode()
    probe = orjson.loads(shown.stdout)
    assert probe["token_endpoint"] == f"{server.base_url}/connect/token"  # discovered, not configured
    assert probe["basis"] == "capability statement"
    assert probe["offered_not_mapped"] == {"Provenance": 3}
    by_type = {t["type"]: t for t in probe["types"]}
    assert by_type["Immunization"]["offered"] is True
    assert by_type["Immunization"]["mapped"] is True
    assert by_type["Immunization"]["count"] == 3
    assert by_type["Immunization"]["action"].startswith("request (")
    assert by_type["Provenance"]["action"] == "report: offered, not mapped"
    assert by_type["Encounter"]["action"].startswith("request (")
    assert "_lastUpdated" in by_type["Patient"]["search_params"]
    assert probe["requested"][:3] == ["Organization", "Location", "Practitioner"]
    assert text.returncode == 0
    assert "offered, not mapped (reported by every sync, never fetched): Provenance (3)" in text.stdout.decode()
    assert missing.returncode == 2
    assert "no adapter named 'nope'" in missing.stderr.decode()
