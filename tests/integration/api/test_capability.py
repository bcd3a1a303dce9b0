"""The CapabilityStatement says exactly what the implementation does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: the statement describes the code, not the backend (the contract suite covers both)."""
    return f"sqlite:///{tmp_path / 'store.db'}"


async def statement(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/metadata")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    return body


async def test_every_advertised_search_parameter_and_include_is_accepted(client: httpx.AsyncClient) -> None:
    """Each listed parameter answers :missing=true with 200; each listed include and revinclude too."""
    rest = (await statement(client))["rest"][0]
    failures: list[tuple[str, str, object]] = []
    for resource in rest["resource"]:
        rtype = resource["type"]
        if rtype == "AuditEvent":
            continue  # the audit trail: searched by patient only, tested below
        for param in resource["searchParam"]:
            response = await client.get(f"/{rtype}", params={f"{param['name']}:missing": "true", "_count": "1"})
            if response.status_code != 200:
                failures.append((rtype, param["name"], response.status_code))
        for include in resource["searchInclude"]:
            if (await client.get(f"/{rtype}", params={"_include": include})).status_code != 200:
                failures.append((rtype, include, "include"))
        for include in resource["searchRevInclude"]:
            if (await client.get(f"/{rtype}", params={"_revinclude": include})).status_code != 200:
                failures.append((rtype, include, "revinclude"))
    assert failures == []


async def test_parameters_not_advertised_are_refused(client: httpx.AsyncClient, reference_dir: Path) -> None:
    """Every official R4 parameter of a served type that is not listed gives 400 (none is silently ignored)."""
    rest = (await statement(client))["rest"][0]
    listed = {(r["type"], p["name"]) for r in rest["resource"] for p in r["searchParam"]}
    types = {r["type"] for r in rest["resource"]} - {"AuditEvent"}
    official = json.loads((reference_dir / "r4-search-parameters.json").read_text(encoding="utf-8"))["parameters"]
    unlisted = {(base, code) for base in types for code in official.get(base, {}) if (base, code) not in listed}
    assert unlisted, "expected some official parameters we do not support (composite, special, phonetic)"
    for rtype, name in sorted(unlisted):
        response = await client.get(f"/{rtype}", params={name: "x"})
        assert response.status_code == 400, (rtype, name)


async def test_interactions_and_operations_match_routing(client: httpx.AsyncClient) -> None:
    """Listed interactions answer; unlisted types are 404; writes (never listed) are 405; $everything and
    $match are listed and answer."""
    rest = (await statement(client))["rest"][0]
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert [i["code"] for i in patient["interaction"]] == ["read", "vread", "history-instance", "search-type"]
    assert [o["name"] for o in patient["operation"]] == ["everything", "match"]
    assert (await client.get("/Patient/p1")).status_code == 200
    assert (await client.get("/Patient/p1/_history/1")).status_code == 200
    assert (await client.get("/Patient/p1/_history")).status_code == 200
    assert (await client.get("/Patient")).status_code == 200
    assert (await client.get("/Patient/p1/$everything")).status_code == 200
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": {"resourceType": "Patient"}}],
    }
    assert (await client.post("/Patient/$match", json=parameters)).status_code == 200
    assert (await client.get("/Patient/$match")).status_code == 405  # it takes a Parameters body: POST
    assert (await client.post("/Patient", content=b"{}")).status_code == 405
    listed = {r["type"] for r in rest["resource"]}
    assert "Basic" not in listed  # a type the engine does not serve
    assert (await client.get("/Basic")).status_code == 404
    for rtype in listed - {"AuditEvent"}:
        assert (await client.get(f"/{rtype}", params={"_count": "0"})).status_code == 200
    audit = next(r for r in rest["resource"] if r["type"] == "AuditEvent")
    assert [i["code"] for i in audit["interaction"]] == ["search-type"]
    assert (await client.get("/AuditEvent", params={"patient": "p1"})).status_code == 200
    assert (await client.get("/AuditEvent/1")).status_code == 404
