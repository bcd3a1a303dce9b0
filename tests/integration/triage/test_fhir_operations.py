"""The triage operations from a real FHIR client (fhirpy) against `bcconnect serve` on loopback: paged Bundles,
OperationDefinitions in the CapabilityStatement, scopes, bad requests, and an AuditEvent for each call."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fhirpy import AsyncFHIRClient

from bcconnect.security import count_audit_events

from .conftest import Served

pytestmark = pytest.mark.anyio


async def _all_pages(client: AsyncFHIRClient, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    bundle = await client.execute(path, method="get", params=params)
    entries = list(bundle.get("entry", []))
    while (nxt := next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)) is not None:
        bundle = await client.execute(nxt.split("/fhir/", 1)[1], method="get")
        entries += bundle.get("entry", [])
    return entries


def _fact(entry: dict[str, Any], name: str) -> Any:
    facts = entry["extension"][0]["extension"]
    found = next(f for f in facts if f["url"] == name)
    return next(v for k, v in found.items() if k.startswith("value"))


async def test_fhirpy_pages_through_the_triage_worklist(served: Served) -> None:
    """$triage-worklist?network=ENT in pages of 2 gives exactly the truth's ENT referrals awaiting triage."""
    entries = await _all_pages(
        served.client(),
        "ServiceRequest/$triage-worklist",
        {"network": "ENT", "as-of": served.world.as_of.isoformat(), "_count": 2},
    )
    ubrns = {
        i["value"] for e in entries for i in e["resource"]["identifier"] if i["system"] == "https://fhir.nhs.uk/Id/UBRN"
    }
    want = {
        r["ubrn"]
        for r in served.world.referrals
        if r["network"] == "ENT" and r["triage"] == "awaiting" and r["open"] == "Y" and r["objects"] == "N"
    }
    assert ubrns == want
    assert all(e["resource"]["resourceType"] == "ServiceRequest" for e in entries)
    assert all(isinstance(_fact(e, "daysWaiting"), int) for e in entries)


async def test_fhirpy_reads_the_long_waiters_and_the_pidmas_cohort(served: Served) -> None:
    """$waiting-list?tfc=110&min-weeks=30: only T&O pathways past 30 weeks; pidmas-eligible=true is a subset."""
    client = served.client()
    as_of = served.world.as_of.isoformat()
    waiting = await _all_pages(client, "EpisodeOfCare/$waiting-list", {"tfc": "110", "min-weeks": 30, "as-of": as_of})
    assert waiting
    assert all(_fact(e, "daysWaited") > 30 * 7 and _fact(e, "treatmentFunction") == "110" for e in waiting)
    eligible = await _all_pages(
        client, "EpisodeOfCare/$waiting-list", {"pidmas-eligible": "true", "as-of": as_of, "_count": 50}
    )
    assert all(_fact(e, "pidmasEligible") is True for e in eligible)
    everyone = await _all_pages(client, "EpisodeOfCare/$waiting-list", {"as-of": as_of, "_count": 200})
    assert {e["fullUrl"] for e in eligible} < {e["fullUrl"] for e in everyone}


async def test_operations_are_defined_in_the_capability_statement(served: Served) -> None:
    """The CapabilityStatement names both operations with a definition the server itself serves."""
    client = served.client()
    statement = await client.execute("metadata", method="get")
    operations = {
        op["name"]: op["definition"]
        for r in statement["rest"][0]["resource"]
        for op in r.get("operation", [])
        if r["type"] in ("ServiceRequest", "EpisodeOfCare")
    }
    assert set(operations) == {"triage-worklist", "waiting-list"}
    definition = await client.execute("OperationDefinition/waiting-list", method="get")
    assert definition["url"] == operations["waiting-list"]
    assert {p["name"] for p in definition["parameter"]} >= {"tfc", "min-weeks", "pidmas-eligible"}


async def test_bad_requests_scopes_and_audit(served: Served) -> None:
    """Unknown network or parameter → 400 OperationOutcome; missing scope → 403; every call is audited."""
    before = await served.world.store.read(count_audit_events)
    async with httpx.AsyncClient(base_url=f"{served.base}/fhir") as http:
        auth = {"authorization": f"Bearer {served.token()}"}
        unknown = await http.get("ServiceRequest/$triage-worklist", params={"network": "Cardiology"}, headers=auth)
        assert unknown.status_code == 400
        assert unknown.json()["resourceType"] == "OperationOutcome"
        assert "Cardiology" in unknown.text
        extra = await http.get("EpisodeOfCare/$waiting-list", params={"colour": "blue"}, headers=auth)
        assert extra.status_code == 400
        narrow = {"authorization": f"Bearer {served.token('user/ServiceRequest.rs')}"}
        refused = await http.get("ServiceRequest/$triage-worklist", params={"network": "ENT"}, headers=narrow)
        assert refused.status_code == 403
        posted = await http.post("EpisodeOfCare/$waiting-list", headers=auth)
        assert posted.status_code == 405
        ok = await http.get("EpisodeOfCare/$waiting-list", params={"tfc": "110", "_count": 1}, headers=auth)
        assert ok.status_code == 200
    assert await served.world.store.read(count_audit_events) == before + 5
