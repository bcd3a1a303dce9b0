"""Cohorts as FHIR Groups on the running endpoint: a real FHIR client reads and searches them, the scopes
decide who sees members, ``$recompute`` needs a system scope, and the CapabilityStatement lists Group."""

from __future__ import annotations

import httpx
import pytest
from fhirpy import AsyncFHIRClient

from bcconnect.cohorts import REMOVED_EXTENSION, cohort_member_person_ids

from .conftest import Served

pytestmark = pytest.mark.anyio


async def test_a_fhir_client_searches_by_name_and_reads_the_members(served: Served) -> None:
    """``Group?name=`` finds the cohort; its read carries every member as a golden Patient reference."""
    client = AsyncFHIRClient(f"{served.base}/fhir", authorization=served.headers()["authorization"])
    found = await client.resources("Group").search(name="three or more long").fetch()
    assert [g["id"] for g in found] == ["ltc-3plus"]
    assert "member" not in found[0]
    group = await client.reference("Group", "ltc-3plus").to_resource()
    assert group["type"] == "person"
    assert group["actual"] is True
    members = [m["entity"]["reference"] for m in group["member"]]
    expected = await cohort_member_person_ids(served.world.view, "ltc-3plus")
    assert members == [f"Patient/{p}" for p in expected or []]
    assert group["quantity"] == len(members) > 0
    assert any(e["url"] == REMOVED_EXTENSION for e in group["extension"])
    # a member reference resolves to the golden Patient on the same endpoint
    patient = await client.reference("Patient", members[0].split("/")[1]).to_resource()
    assert patient["id"] == members[0].split("/")[1]


async def test_search_by_id_and_summary_count(served: Served) -> None:
    """``_id`` selects, ``_summary=count`` gives only the total, an unknown parameter is a 400."""
    async with httpx.AsyncClient(base_url=f"{served.base}/fhir", headers=served.headers()) as http:
        both = (await http.get("/Group", params={"_id": "ae-repeat,emergency-3plus"})).json()
        assert sorted(e["resource"]["id"] for e in both["entry"]) == ["ae-repeat", "emergency-3plus"]
        counted = (await http.get("/Group", params={"_summary": "count"})).json()
        assert counted["total"] == 3
        assert "entry" not in counted
        bad = await http.get("/Group", params={"colour": "blue"})
        assert bad.status_code == 400
        assert bad.json()["resourceType"] == "OperationOutcome"
        missing = await http.get("/Group/no-such-cohort")
        assert missing.status_code == 404


async def test_a_patient_token_sees_no_member_list(served: Served) -> None:
    """A ``patient/`` token reads the Group's counts but never who is in it."""
    members = await cohort_member_person_ids(served.world.view, "ltc-3plus")
    assert members
    headers = served.headers("patient/*.rs", patient=members[0])
    async with httpx.AsyncClient(base_url=f"{served.base}/fhir", headers=headers) as http:
        response = await http.get("/Group/ltc-3plus")
        assert response.status_code == 200
        body = response.json()
        assert "member" not in body
        assert body["quantity"] == len(members)
        assert "SUBSETTED" in {t["code"] for t in body["meta"]["tag"]}


async def test_recompute_needs_a_system_scope_and_post(served: Served) -> None:
    """``POST Group/{id}/$recompute``: 403 for a user token, 200 for a system one; GET is a 405."""
    async with httpx.AsyncClient(base_url=f"{served.base}/fhir", timeout=60) as http:
        refused = await http.post("/Group/ae-repeat/$recompute", headers=served.headers("user/*.rs"))
        assert refused.status_code == 403
        before = (await http.get("/Group/ae-repeat", headers=served.headers())).json()
        done = await http.post("/Group/ae-repeat/$recompute", headers=served.headers("system/Group.rs"))
        assert done.status_code == 200, done.text
        assert int(done.json()["meta"]["versionId"]) == int(before["meta"]["versionId"]) + 1
        wrong = await http.get("/Group/ae-repeat/$recompute", headers=served.headers("system/Group.rs"))
        assert wrong.status_code == 405
        unknown = await http.post("/Group/nope/$recompute", headers=served.headers("system/Group.rs"))
        assert unknown.status_code == 404


async def test_the_capability_statement_lists_group_and_a_scope_without_group_is_refused(served: Served) -> None:
    """Group with read, search-type, its parameters and $recompute; a token without Group gets 403."""
    async with httpx.AsyncClient(base_url=f"{served.base}/fhir") as http:
        statement = (await http.get("/metadata")).json()
        (group,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Group"]
        assert {i["code"] for i in group["interaction"]} == {"read", "search-type"}
        assert {p["name"] for p in group["searchParam"]} >= {"name", "_id"}
        assert [o["name"] for o in group["operation"]] == ["recompute"]
        definition = await http.get("/OperationDefinition/group-recompute")
        assert definition.json()["code"] == "recompute"
        refused = await http.get("/Group/ltc-3plus", headers=served.headers("user/Observation.rs"))
        assert refused.status_code == 403
