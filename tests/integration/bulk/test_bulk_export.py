"""FHIR Bulk Data export end to end: a real client over loopback HTTP with a real token, on SQLite and PostgreSQL.

The record is the adversarial world of the security tests (an objector, a restricted person, sensitive records)
plus a person under the national data opt-out; every file is downloaded and every line parsed with
fhir.resources, and neither the objector nor the opted-out person may appear in any of them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from bcconnect.api import create_app, security_hooks
from bcconnect.bulk import WITHHELD_EXTENSION, BulkExports, GroupMembers
from bcconnect.bulk._export import write_type
from bcconnect.cohorts import Cohorts
from bcconnect.config import AuthSettings, BulkSettings, PathSettings, SecuritySettings, Settings
from bcconnect.identity import link_patients
from bcconnect.security import LocalIssuer, SecurityGate, add_objection, count_audit_events, ensure_local_issuer
from bcconnect.security._audit_store import audit_chain_head, stored_events
from bcconnect.store import Store, Tx, open_store, put_resources
from bcconnect.view import View
from support.loopback import serve
from support.security_world import OBJECTOR_NHS, RESTRICTED_CITY, _condition, _observation, _patient, world, write

pytestmark = pytest.mark.anyio

OPTED_OUT_NHS = "9990000050"
ANALYST = {"user": "analyst-1", "org": "RL4", "client_id": "population-health"}


def extended_world() -> list[Any]:
    """The security world plus ``p4``, who has a national data opt-out; ``p1`` and ``p4`` have three long-term
    conditions each (so with the objector ``p2`` all three would be in the 3+ LTC cohort)."""
    return [
        *world(),
        _condition("c1-diabetes", "p1", "44054006"),
        _condition("c1-asthma", "p1", "195967001"),
        _patient("p4", "Optedout", OPTED_OUT_NHS),
        _condition("c4", "p4", "44054006"),
        _condition("c4-copd", "p4", "13645005"),
        _condition("c4-hypertension", "p4", "38341003"),
        _observation("o4-1", "p4", 1),
        _observation("o4-2", "p4", 2),
        # a type the store holds but the endpoint does not serve: never exported (and no error about it)
        write(
            {"resourceType": "Consent", "id": "consent-p1", "status": "active", "patient": {"reference": "Patient/p1"}},
            "p1",
        ),
    ]


@dataclass
class BulkServer:
    """The endpoint over loopback HTTP, its store, exports service and token issuer."""

    base: str
    store: Store
    bulk: BulkExports
    issuer: LocalIssuer

    def headers(self, scopes: str = "system/*.read", **claims: Any) -> dict[str, str]:
        """Headers of a kick-off or poll with a fresh token."""
        for key, value in ANALYST.items():
            claims.setdefault(key, value)
        token = self.issuer.issue(scopes=scopes, **claims)
        return {"authorization": f"Bearer {token}", "accept": "application/fhir+json", "prefer": "respond-async"}


@asynccontextmanager
async def bulk_server(
    store_url: str,
    tmp_path: Path,
    *,
    worker: bool = True,
    group_members: GroupMembers | None = None,
    cohorts: bool = False,
    **bulk: Any,
) -> AsyncIterator[BulkServer]:
    """The secured endpoint with ``$export`` and its worker, over :func:`extended_world`."""
    issuer = ensure_local_issuer(tmp_path)
    opt_out = tmp_path / "opt-out.txt"
    opt_out.write_text(f"# national data opt-out\n{OPTED_OUT_NHS}\n", encoding="utf-8")
    bulk.setdefault("retry_after_seconds", 1)
    bulk.setdefault("page_rows", 3)  # small export pages too: a type takes many
    settings = Settings(
        auth=AuthSettings(issuers=(issuer.as_jwt_issuer(),)),
        security=SecuritySettings(national_opt_out_file=str(opt_out), user_rate_limit_per_second=1000.0),
        bulk=BulkSettings(**bulk),
        paths=PathSettings(data_dir=str(tmp_path / "data")),
        root=tmp_path,
    )
    async with open_store(store_url) as store:
        await store.write(lambda tx: put_resources(tx, extended_world()))
        await store.write(lambda tx: add_objection(tx, OBJECTOR_NHS))
        gate = SecurityGate.from_settings(settings, store)
        authenticate, on_complete = security_hooks(gate)
        # small pages, so an export takes many pages (and a file split happens inside a type)
        view = View(store, default_count=5, max_count=3, sensitivity=gate.policy)
        if cohorts:
            # the person model (golden Patients), which cohorts are computed over
            patients = [orjson.loads(w.body) for w in extended_world() if w.resource_type == "Patient"]
            await store.write(lambda tx: link_patients(tx, patients, ods_code="RL4"))
            await Cohorts.from_settings(settings, view).compute(["ltc-3plus"])
        exports = BulkExports.from_settings(settings, view, group_members=group_members)
        app = create_app(settings, view, authenticate=authenticate, on_request_complete=on_complete, bulk=exports)
        async with serve(app) as root, anyio.create_task_group() as group:
            if worker:
                group.start_soon(lambda: exports.run_worker(poll_seconds=0.1))
            yield BulkServer(f"{root}/fhir", store, exports, issuer)
            group.cancel_scope.cancel()


async def poll_until_done(client: httpx.AsyncClient, status_url: str, headers: dict[str, str]) -> httpx.Response:
    """Poll as a client should: wait what ``Retry-After`` says between polls; the final answer."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = await client.get(status_url, headers=headers)
        if answer.status_code != 202:
            return answer
        assert answer.headers["x-progress"]
        await anyio.sleep(float(answer.headers["retry-after"]))
    raise AssertionError("the export did not finish in 60 s")


def parse_ndjson(body: bytes) -> list[dict[str, Any]]:
    """Every line as JSON, each validated as its FHIR R4 resource type by fhir.resources."""
    out = []
    for line in body.splitlines():
        resource = orjson.loads(line)
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        out.append(resource)
    return out


async def run_export(
    server: BulkServer, client: httpx.AsyncClient, path: str = "$export", *, prefer: str | None = None, **token: Any
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Kick off, poll, download every file: the manifest and the resources per type."""
    headers = server.headers(**token)
    kick_headers = headers if prefer is None else {**headers, "prefer": prefer}
    kick = await client.get(f"{server.base}/{path}", headers=kick_headers)
    assert kick.status_code == 202, kick.text
    status_url = kick.headers["content-location"]
    done = await poll_until_done(client, status_url, headers)
    assert done.status_code == 200, done.text
    manifest = done.json()
    resources: dict[str, list[dict[str, Any]]] = {}
    for output in manifest["output"]:
        got = await client.get(output["url"], headers={**headers, "accept": "application/fhir+ndjson"})
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "application/fhir+ndjson"
        lines = parse_ndjson(got.content)
        assert len(lines) == output["count"]
        assert all(r["resourceType"] == output["type"] for r in lines)
        resources.setdefault(output["type"], []).extend(lines)
    return manifest, resources


async def test_a_bulk_client_exports_the_record_without_the_objector_or_the_opted_out(
    store_url: str, tmp_path: Path
) -> None:
    async with bulk_server(store_url, tmp_path, max_file_mb=0.0005) as server, httpx.AsyncClient() as client:
        before = await server.store.read(count_audit_events)
        manifest, resources = await run_export(server, client)
        assert manifest["requiresAccessToken"] is True
        assert manifest["request"] == f"{server.base}/$export"
        assert manifest["transactionTime"].endswith("Z")
        assert manifest["error"] == []
        # ~500-byte files: a type with several resources is split into several files
        assert len([o for o in manifest["output"] if o["type"] == "Observation"]) > 1
        everything = orjson.dumps(resources)
        for absent in (b"p2", b"p4", OBJECTOR_NHS.encode(), OPTED_OUT_NHS.encode(), b"Objectorfamily"):
            assert absent not in everything, absent
        assert manifest["extension"][WITHHELD_EXTENSION] == {"nationalDataOptOut": 1, "objection": 1}
        patients = {p["id"] for p in resources["Patient"]}
        assert patients == {"p1", "p3"}
        # no sensitive grant: the HIV Condition and the sexual-health Encounter are screened out as in a search
        assert "c-hiv" not in {c["id"] for c in resources["Condition"]}
        assert "e-sex" not in {e["id"] for e in resources["Encounter"]}
        # the restricted person is there, with no whereabouts
        restricted = next(p for p in resources["Patient"] if p["id"] == "p3")
        assert "address" not in restricted
        assert "telecom" not in restricted
        assert {o["id"] for o in resources["Observation"]} == {"o1-1", "o1-2", "o1-3"}
        assert "Organization" in resources  # a system export carries shared resources too

        # audited: the kick-off and each file fetched, with how many resources the file held
        def recent(tx: Tx) -> list[dict[str, Any]]:
            head = audit_chain_head(tx)  # the newest event, in the server's own chain
            events = stored_events(tx, after=max(0, head.link - 200), through=head.link, limit=200, chain=head.chain)
            return [orjson.loads(e.body) for e in events]

        events = await server.store.read(recent)
        outcomes = [e.get("outcomeDesc", "") for e in events]
        agents = [e["agent"] for e in events]
        fetched = [i for i, o in enumerate(outcomes) if " file " in o]
        assert len(fetched) == len(manifest["output"])
        assert any("Observation resources" in outcomes[i] for i in fetched)
        assert all("population-health" in orjson.dumps(agents[i]).decode() for i in fetched)
        assert len([o for o in outcomes if "queued (system)" in o]) == 1
        assert await server.store.read(count_audit_events) > before


async def test_patient_and_group_level_exports_and_type_filters(store_url: str, tmp_path: Path) -> None:
    async with bulk_server(store_url, tmp_path) as server, httpx.AsyncClient() as client:
        manifest, resources = await run_export(
            server, client, "Patient/$export?_type=Patient,Observation&_typeFilter=Observation%3Fdate%3Dge2024-01-02"
        )
        assert set(resources) == {"Patient", "Observation"}
        assert {o["id"] for o in resources["Observation"]} == {"o1-2", "o1-3"}
        assert manifest["request"].endswith(
            "Patient/$export?_type=Patient%2CObservation&_typeFilter=Observation%3Fdate%3Dge2024-01-02"
        )
        # only the types the token reads: a system/Observation.read token gets Observations alone
        _, only = await run_export(server, client, scopes="system/Observation.read")
        assert set(only) == {"Observation"}
        # _since: nothing changed after now
        later = "2999-01-01T00:00:00Z"
        manifest, nothing = await run_export(server, client, f"$export?_since={later}")
        assert nothing == {}
        assert manifest["output"] == []


async def test_several_type_filters_of_one_type_are_or_ed(store_url: str, tmp_path: Path) -> None:
    """Bulk Data v2: filters of one type are OR-ed, a resource matching two is written once; repeated
    ``_typeFilter`` parameters and comma-separated ones mean the same."""
    async with bulk_server(store_url, tmp_path) as server, httpx.AsyncClient() as client:
        repeated = (
            "$export?_type=Observation,Condition"
            "&_typeFilter=Observation%3Fdate%3Dle2024-01-01"
            "&_typeFilter=Observation%3Fdate%3Dge2024-01-03"
            "&_typeFilter=Observation%3Fdate%3Dge2024-01-02"  # overlaps the one before: o1-3 matches both
        )
        manifest, resources = await run_export(server, client, repeated)
        observations = [o["id"] for o in resources["Observation"]]
        assert sorted(observations) == ["o1-1", "o1-2", "o1-3"]  # o4-* belong to the opted-out person
        assert sum(o["count"] for o in manifest["output"] if o["type"] == "Observation") == 3
        # a type without a filter is exported whole
        assert {c["id"] for c in resources["Condition"]} >= {"c1", "c1-diabetes", "c1-asthma"}
        commas = (
            "$export?_type=Observation&_typeFilter=Observation%3Fdate%3Dle2024-01-01,Observation%3Fdate%3Dge2024-01-03"
        )
        _, resources = await run_export(server, client, commas)
        assert sorted(o["id"] for o in resources["Observation"]) == ["o1-1", "o1-3"]


async def test_a_group_export_of_a_computed_cohort(store_url: str, tmp_path: Path) -> None:
    """The 3+ long-term-conditions cohort: p1 only (the objector and the opted-out person are not members)."""
    async with bulk_server(store_url, tmp_path, cohorts=True) as server, httpx.AsyncClient() as client:
        manifest, resources = await run_export(server, client, "Group/ltc-3plus/$export")
        # one Patient per person: p1's golden Patient (not the trust's record)
        (golden,) = resources["Patient"]
        assert {"other": {"reference": "Patient/p1"}, "type": "seealso"} in golden["link"]
        assert {c["subject"]["reference"] for c in resources["Condition"]} == {f"Patient/{golden['id']}"}
        assert {c["id"] for c in resources["Condition"]} == {"c1", "c1-diabetes", "c1-asthma"}
        assert "Organization" not in resources  # a Group export carries the members' compartments only
        assert manifest["extension"][WITHHELD_EXTENSION] == {"nationalDataOptOut": 0, "objection": 0}


async def test_a_group_export_checks_opt_out_and_objection_itself(store_url: str, tmp_path: Path) -> None:
    """Whatever a Group's member list says, the opted-out person is left out by the export and the objector by
    the screen (a stale or foreign member list cannot leak them)."""

    async def members(access: Any, group_id: str) -> list[str] | None:
        return ["p1", "p2", "p4"] if group_id == "stale" else None

    async with (
        bulk_server(store_url, tmp_path, group_members=members) as server,
        httpx.AsyncClient() as client,
    ):
        manifest, resources = await run_export(server, client, "Group/stale/$export")
        assert {p["id"] for p in resources["Patient"]} == {"p1"}
        everything = orjson.dumps(resources)
        assert b"p2" not in everything
        assert b"p4" not in everything
        assert manifest["extension"][WITHHELD_EXTENSION] == {"nationalDataOptOut": 1, "objection": 1}


async def test_the_capability_statement_lists_export(store_url: str, tmp_path: Path) -> None:
    async with bulk_server(store_url, tmp_path, worker=False) as server, httpx.AsyncClient() as client:
        statement = (await client.get(f"{server.base}/metadata")).json()
        assert statement["instantiates"] == ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"]
        assert [o["name"] for o in statement["rest"][0]["operation"]] == ["export"]
        patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
        assert "export" in [o["name"] for o in patient["operation"]]


async def test_post_kick_off_with_parameters(store_url: str, tmp_path: Path) -> None:
    async with bulk_server(store_url, tmp_path) as server, httpx.AsyncClient() as client:
        body = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "_type", "valueString": "Condition"},
                {"name": "_outputFormat", "valueString": "ndjson"},
            ],
        }
        headers = server.headers()
        kick = await client.post(f"{server.base}/$export", headers=headers, json=body)
        assert kick.status_code == 202, kick.text
        done = await poll_until_done(client, kick.headers["content-location"], headers)
        assert [o["type"] for o in done.json()["output"]] == ["Condition"]


BAD_KICK_OFFS = [
    ("$export", {"prefer": None}, 400),
    ("$export?_outputFormat=text/csv", {}, 400),
    ("$export?_type=Nonsense", {}, 400),
    ("$export?_since=yesterday", {}, 400),
    ("$export?_typeFilter=Observation%3Fnot-a-parameter%3D1", {}, 400),
    ("$export?_typeFilter=Observation%3F_count%3D5", {}, 400),
    ("$export?_typeFilter=Observation", {}, 400),
    ("$export?_type=Condition&_typeFilter=Observation%3Fdate%3Dge2024", {}, 400),
    ("$export?patient=p1", {}, 400),
    ("$export?_elements=Observation.nonsense", {}, 400),
    ("$export?_elements=Observation.code.text", {}, 400),
    ("$export?_elements=", {}, 400),
    ("$export?_type=Condition&_elements=Observation.code", {}, 400),
    ("$export?_elements=code&patient=p1", {"prefer": "respond-async, handling=strict"}, 400),
    ("$export", {"accept": "text/csv"}, 406),
    ("Group/no-such-group/$export", {}, 404),
    ("$export", {"authorization": None}, 401),
    ("$export", {"scopes": "patient/*.read", "patient": "p1"}, 403),
    ("$export", {"scopes": "user/*.read"}, 403),
]


@pytest.mark.parametrize(("path", "change", "status"), BAD_KICK_OFFS)
async def test_every_bad_kick_off_is_an_operation_outcome(
    store_url: str, tmp_path: Path, path: str, change: dict[str, Any], status: int
) -> None:
    async with bulk_server(store_url, tmp_path, worker=False) as server, httpx.AsyncClient() as client:
        change = dict(change)  # the parameter is shared by the SQLite and PostgreSQL runs
        token = {k: change.pop(k) for k in ("scopes", "patient") if k in change}
        headers = server.headers(**token)
        for name, value in change.items():
            if value is None:
                headers.pop(name)
            else:
                headers[name] = value
        answer = await client.get(f"{server.base}/{path}", headers=headers)
        assert answer.status_code == status, answer.text
        assert answer.json()["resourceType"] == "OperationOutcome"


async def test_status_and_files_belong_to_the_requester(store_url: str, tmp_path: Path) -> None:
    async with bulk_server(store_url, tmp_path) as server, httpx.AsyncClient() as client:
        headers = server.headers()
        kick = await client.get(f"{server.base}/$export?_type=Patient", headers=headers)
        status_url = kick.headers["content-location"]
        manifest = (await poll_until_done(client, status_url, headers)).json()
        file_url = manifest["output"][0]["url"]
        other = server.headers(client_id="someone-else")
        for url in (status_url, file_url, f"{server.base}/$export-status/no-such-job"):
            answer = await client.get(url, headers=other)
            assert answer.status_code == 404, url
            assert answer.json()["resourceType"] == "OperationOutcome"
        # the same client whose token no longer reads Patient: 403
        narrower = server.headers(scopes="system/Observation.read")
        assert (await client.get(file_url, headers=narrower)).status_code == 403
        assert (await client.get(file_url)).status_code == 401
        wrong = await client.put(status_url, headers=headers)
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "GET, DELETE, HEAD"  # what the status URL does take


async def test_cancel_removes_the_files_and_the_job(store_url: str, tmp_path: Path) -> None:
    async with bulk_server(store_url, tmp_path) as server, httpx.AsyncClient() as client:
        headers = server.headers()
        kick = await client.get(f"{server.base}/$export", headers=headers)
        status_url = kick.headers["content-location"]
        manifest = (await poll_until_done(client, status_url, headers)).json()
        job_id = status_url.rsplit("/", 1)[1]
        folder = server.bulk.directory / job_id
        assert any(folder.iterdir())
        cancelled = await client.delete(status_url, headers=headers)
        assert cancelled.status_code == 202
        assert not folder.exists()
        for url in (status_url, manifest["output"][0]["url"]):
            gone = await client.get(url, headers=headers)
            assert gone.status_code == 404
            assert gone.json()["resourceType"] == "OperationOutcome"


async def test_a_queued_export_can_be_cancelled_before_it_runs(store_url: str, tmp_path: Path) -> None:
    async with bulk_server(store_url, tmp_path, worker=False) as server, httpx.AsyncClient() as client:
        headers = server.headers()
        kick = await client.get(f"{server.base}/$export", headers=headers)
        status_url = kick.headers["content-location"]
        waiting = await client.get(status_url, headers=headers)
        assert waiting.status_code == 202
        assert waiting.headers["x-progress"] == "queued"
        assert (await client.delete(status_url, headers=headers)).status_code == 202
        assert await server.bulk.work_once() == 0  # nothing left to run
        assert (await client.get(status_url, headers=headers)).status_code == 404


async def test_files_expire_and_then_answer_404(store_url: str, tmp_path: Path) -> None:
    async with bulk_server(store_url, tmp_path, worker=False) as server, httpx.AsyncClient() as client:
        headers = server.headers()
        kick = await client.get(f"{server.base}/$export?_type=Patient", headers=headers)
        status_url = kick.headers["content-location"]
        assert await server.bulk.work_once() == 1
        done = await client.get(status_url, headers=headers)
        assert done.status_code == 200
        assert "expires" in done.headers
        file_url = done.json()["output"][0]["url"]
        # a day later (retain_hours = 24): the sweeper removes the files
        server.bulk.clock = lambda: time.time() + 25 * 3600
        assert len(await server.bulk.sweep()) == 1
        job_id = status_url.rsplit("/", 1)[1]
        assert not (server.bulk.directory / job_id).exists()
        for url in (status_url, file_url):
            gone = await client.get(url, headers=headers)
            assert gone.status_code == 404
            assert "expired" in gone.text


async def test_a_job_resumes_after_its_worker_dies(store_url: str, tmp_path: Path) -> None:
    """A worker that stops mid-export (its lease runs out) leaves the job to another, which finishes it at the
    same snapshot: the result equals an export that ran straight through."""
    async with bulk_server(store_url, tmp_path, worker=False, lease_seconds=1) as server, httpx.AsyncClient() as client:
        headers = server.headers()
        straight = await client.get(f"{server.base}/$export", headers=headers)
        await server.bulk.work_once()
        expected = (await client.get(straight.headers["content-location"], headers=headers)).json()
        kick = await client.get(f"{server.base}/$export", headers=headers)
        status_url = kick.headers["content-location"]
        first = server.bulk
        pages = 0

        async def dies_after_a_few_pages(resource_type: str, written: int) -> bool:
            nonlocal pages
            pages += 1
            if pages == 4:
                raise KeyboardInterrupt  # the process dies: nothing after this runs
            return True

        claimed = await first._claim()
        assert len(claimed) == 1
        real = write_type

        async def dying_write_type(*args: Any, **kwargs: Any) -> Any:
            kwargs["on_page"] = dies_after_a_few_pages
            return await real(*args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("bcconnect.bulk._service.write_type", dying_write_type)
            with pytest.raises(KeyboardInterrupt):
                await first._run(claimed[0])
        progress = await client.get(status_url, headers=headers)
        assert progress.status_code == 202
        second = BulkExports(first.view, replace(first.settings), first.directory, opt_out=first.opt_out)
        assert await second.work_once() == 0  # the dead worker's lease is still live
        await anyio.sleep(1.1)
        assert await second.work_once() == 1
        resumed = (await client.get(status_url, headers=headers)).json()
        counts = {o["type"]: 0 for o in expected["output"]}
        for o in expected["output"]:
            counts[o["type"]] += o["count"]
        again = {o["type"]: 0 for o in resumed["output"]}
        for o in resumed["output"]:
            again[o["type"]] += o["count"]
        assert again == counts


SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}


def subsetted(resource: dict[str, Any]) -> bool:
    return SUBSETTED in resource.get("meta", {}).get("tag", [])


async def test_elements_subset_a_system_export_to_the_named_and_mandatory_elements(
    store_url: str, tmp_path: Path
) -> None:
    """``_elements`` (Bulk Data IG v2): each resource of a named type keeps the named root elements plus the
    mandatory ones and is tagged SUBSETTED; every line still parses as its type (run_export validates each with
    fhir.resources); a type no name applies to is whole. The screen came first: the restricted person's address
    stays redacted though ``address`` was asked for, and the HIV Condition stays out."""
    async with bulk_server(store_url, tmp_path) as server, httpx.AsyncClient() as client:
        manifest, resources = await run_export(
            server,
            client,
            "$export?_type=Observation,Patient,Condition,Encounter"
            "&_elements=Observation.valueQuantity,Patient.name,Patient.address,Condition.code",
        )
        assert manifest["error"] == []
        assert manifest["request"].endswith(
            "_elements=Observation.valueQuantity%2CPatient.name%2CPatient.address%2CCondition.code"
        )
        for observation in resources["Observation"]:
            assert subsetted(observation)
            # status and code are mandatory (1..1) in R4's Observation: kept though not named
            assert set(observation) == {"resourceType", "id", "meta", "status", "code", "valueQuantity"}
        for condition in resources["Condition"]:
            assert subsetted(condition)
            assert set(condition) == {"resourceType", "id", "meta", "code", "subject"}  # subject: 1..1
        assert "c-hiv" not in {c["id"] for c in resources["Condition"]}
        patients = {p["id"]: p for p in resources["Patient"]}
        assert set(patients) == {"p1", "p3"}
        assert all(
            subsetted(p) and set(p) <= {"resourceType", "id", "meta", "name", "address"} for p in patients.values()
        )
        assert "birthDate" not in patients["p1"]
        assert "address" not in patients["p3"]  # redacted by the screen before subsetting
        assert RESTRICTED_CITY.encode() not in orjson.dumps(resources)
        # Encounter was not named: whole, untagged
        assert resources["Encounter"]
        assert all(not subsetted(e) and "period" in e for e in resources["Encounter"])


async def test_elements_on_a_group_export_apply_an_unqualified_name_to_every_type(
    store_url: str, tmp_path: Path
) -> None:
    async with bulk_server(store_url, tmp_path, cohorts=True) as server, httpx.AsyncClient() as client:
        _, resources = await run_export(server, client, "Group/ltc-3plus/$export?_elements=code")
        assert {c["id"] for c in resources["Condition"]} == {"c1", "c1-diabetes", "c1-asthma"}
        for resource_type, items in resources.items():
            for item in items:
                assert subsetted(item), (resource_type, item["id"])
        (golden,) = resources["Patient"]
        assert set(golden) == {"resourceType", "id", "meta"}  # a Patient has no code, nor a mandatory element
        assert all(set(c) == {"resourceType", "id", "meta", "code", "subject"} for c in resources["Condition"])
        # the person-centred reference survives subsetting: the Condition points at the golden Patient
        assert {c["subject"]["reference"] for c in resources["Condition"]} == {f"Patient/{golden['id']}"}
        assert all(set(e) == {"resourceType", "id", "meta", "status", "class"} for e in resources["Encounter"])


async def test_lenient_handling_ignores_an_unknown_element_and_says_so_in_the_error_file(
    store_url: str, tmp_path: Path
) -> None:
    async with bulk_server(store_url, tmp_path) as server, httpx.AsyncClient() as client:
        manifest, resources = await run_export(
            server,
            client,
            "$export?_type=Observation&_elements=Observation.nonsense,Observation.code&_shape=round",
            prefer="respond-async, handling=lenient",
        )
        assert all(set(o) == {"resourceType", "id", "meta", "status", "code"} for o in resources["Observation"])
        (error,) = manifest["error"]
        got = await client.get(error["url"], headers=server.headers())
        outcomes = parse_ndjson(got.content)
        said = [i["diagnostics"] for o in outcomes for i in o["issue"]]
        assert len(said) == 2
        assert any("'Observation.nonsense'" in d for d in said)
        assert any(d.startswith("_shape") for d in said)
        assert {i["severity"] for o in outcomes for i in o["issue"]} == {"warning"}


def provenance_targets(resources: dict[str, list[dict[str, Any]]]) -> set[str]:
    """The versions the exported Provenance describe (each Provenance has one target)."""
    out = set()
    for provenance in resources.get("Provenance", []):
        (target,) = provenance["target"]
        out.add(target["reference"])
    assert len(out) == len(resources.get("Provenance", [])), "one Provenance per version"
    return out


def exported_versions(resources: dict[str, list[dict[str, Any]]], types: set[str] | None = None) -> set[str]:
    return {
        f"{t}/{r['id']}/_history/{r['meta']['versionId']}"
        for t, items in resources.items()
        if t != "Provenance" and (types is None or t in types)
        for r in items
    }


#: resources the screen withholds from a grant without the sensitive scope, and the objector's
WITHHELD = ("Condition/c-hiv/", "Encounter/e-sex/", "Patient/p2/", "Condition/c2-", "Observation/o2-", "Encounter/e2-")


async def test_provenance_is_exported_for_exactly_the_exported_resources(store_url: str, tmp_path: Path) -> None:
    """Provenance in a system export (the default all types, and ``_type=Provenance``): one per exported
    version, as ``_revinclude=Provenance:target`` composes it; none for a withheld or objecting person's
    resources."""
    async with bulk_server(store_url, tmp_path) as server, httpx.AsyncClient() as client:
        manifest, resources = await run_export(server, client)
        targets = provenance_targets(resources)
        assert targets == exported_versions(resources)
        assert sum(o["count"] for o in manifest["output"] if o["type"] == "Provenance") == len(targets)
        assert not [t for t in targets if t.startswith(WITHHELD)]
        assert b"Objector" not in orjson.dumps(resources["Provenance"])
        # the same Provenance when only Provenance is asked for (the resources themselves are not written)
        _, only = await run_export(server, client, "$export?_type=Provenance")
        assert set(only) == {"Provenance"}
        assert provenance_targets(only) == targets
        # with other types: the Provenance of those only, and subsetted by _elements like any type
        _, some = await run_export(server, client, "$export?_type=Observation,Provenance&_elements=Provenance.recorded")
        assert provenance_targets(some) == exported_versions(some) == exported_versions(resources, {"Observation"})
        assert all(subsetted(p) and "entity" not in p for p in some["Provenance"])
        # a token that does not read Provenance gets none
        _, unread = await run_export(server, client, scopes="system/Observation.read system/Patient.read")
        assert set(unread) == {"Observation", "Patient"}


async def test_a_group_export_carries_the_provenance_of_its_members_resources_only(
    store_url: str, tmp_path: Path
) -> None:
    async with bulk_server(store_url, tmp_path, cohorts=True) as server, httpx.AsyncClient() as client:
        _, resources = await run_export(server, client, "Group/ltc-3plus/$export?_type=Patient,Condition,Provenance")
        (golden,) = resources["Patient"]
        assert provenance_targets(resources) == exported_versions(resources)
        assert {t.split("/")[0] for t in provenance_targets(resources)} == {"Patient", "Condition"}
        # the golden Patient's Provenance names its (visible) source Patient
        (own,) = [
            p for p in resources["Provenance"] if p["target"][0]["reference"].startswith(f"Patient/{golden['id']}/")
        ]
        assert any(e["what"]["reference"].startswith("Patient/p1") for e in own["entity"])


async def test_the_provenance_check_catches_a_screen_that_lets_withheld_rows_through(
    store_url: str, tmp_path: Path
) -> None:
    """The guard above can fail: with the export's screen bypassed (every row visible), the sensitive and the
    objector's resources are exported and their Provenance with them."""
    async with bulk_server(store_url, tmp_path) as server, httpx.AsyncClient() as client:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("bcconnect.view._bulk._visible", lambda row, vis, sensitive: row.resource.body is not None)
            _, leaked = await run_export(server, client, "$export?_type=Provenance")
        assert [t for t in provenance_targets(leaked) if t.startswith(WITHHELD)]
