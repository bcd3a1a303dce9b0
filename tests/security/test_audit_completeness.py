"""Audit completeness (issue item 7): N requests of every kind → N AuditEvents, each naming who asked, for which
organisation and purpose, and the person (golden id) as well as the records touched; ``AuditEvent?patient=``
with any id of the person finds them all."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bcconnect.fhir.constants import (
    NHS_NUMBER_SYSTEM,
    NHS_NUMBER_VERIFICATION_EXTENSION,
    NHS_NUMBER_VERIFICATION_SYSTEM,
)
from bcconnect.identity import link_patients, person_of
from bcconnect.security import count_audit_events
from bcconnect.store import ResourceWrite, Tx, put_resources
from support.security_world import Endpoint, secured

pytestmark = pytest.mark.anyio

PERSON_NHS = "9990000050"


def _source_patient(pid: str) -> dict[str, Any]:
    verified = {
        "url": NHS_NUMBER_VERIFICATION_EXTENSION,
        "valueCodeableConcept": {"coding": [{"system": NHS_NUMBER_VERIFICATION_SYSTEM, "code": "01"}]},
    }
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": PERSON_NHS, "extension": [verified]}],
        "name": [{"family": "Linked", "given": ["Pat"]}],
        "gender": "male",
        "birthDate": "1961-06-01",
    }


@pytest.fixture
async def linked(store_url: str, tmp_path: Path) -> AsyncIterator[tuple[Endpoint, str]]:
    """The secured world plus one person known to two trusts (rl4-px, rbk-px); yields the golden id."""
    async with secured(store_url, tmp_path, rate_limit_burst=1_000) as endpoint:
        for ods, pid in (("RL4", "rl4-px"), ("RBK", "rbk-px")):

            def load(tx: Tx, ods: str = ods, pid: str = pid) -> None:
                body = _source_patient(pid)
                put_resources(tx, [ResourceWrite("Patient", pid, orjson.dumps(body), ods.lower(), pid)])
                link_patients(tx, [body], ods_code=ods)

            await endpoint.store.write(load)
        person = await endpoint.store.read(lambda tx: person_of(tx, "rl4-px"))
        assert person is not None
        yield endpoint, person


def _who(event: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    user = org = None
    for agent in event["agent"]:
        code = agent["type"]["coding"][0]["code"]
        ident = agent["who"].get("identifier", {}).get("value")
        if code == "humanuser":
            user = ident
        elif code == "dataprocessor":
            org = ident
    purposes = [c["code"] for p in event.get("purposeOfEvent", []) for c in p["coding"]]
    return user, org, ("directcare" if "directcare" in purposes else None)


def _patients(event: dict[str, Any]) -> set[str]:
    return {e["what"]["reference"] for e in event["entity"] if "what" in e}


def _query(event: dict[str, Any]) -> str:
    return next(base64.b64decode(e["query"]).decode() for e in event["entity"] if "query" in e)


async def test_every_request_of_every_kind_is_one_event_naming_who_org_purpose_and_person(
    linked: tuple[Endpoint, str],
) -> None:
    endpoint, person = linked
    good = endpoint.token("user/*.rs", user="912345678901", org="RL4")
    narrow = endpoint.token("user/Observation.rs", user="912345678901", org="RL4")
    match_body = orjson.dumps(
        {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": _source_patient("x")}]}
    )
    requests: list[tuple[str, str, dict[str, str], bytes | None, bool]] = [
        # (method, url, headers, body, names the person)
        ("GET", f"/Patient/{person}", good, None, True),
        ("GET", "/Patient/rbk-px", good, None, True),
        ("GET", "/Patient/rl4-px/_history/1", good, None, True),
        ("GET", "/Patient/rl4-px/_history", good, None, True),
        ("GET", f"/Patient/{person}/$everything", good, None, True),
        ("GET", f"/Encounter?patient={person}", good, None, True),
        ("GET", "/Condition?subject=Patient/rbk-px", good, None, True),
        ("GET", f"/Patient?_id={person}", good, None, True),
        ("POST", "/Patient/$match", good, match_body, True),
        ("GET", "/Patient/rl4-px", narrow, None, True),  # 403: the refusal names the person too
        ("GET", "/Patient/rl4-px?_format=application/xml", good, None, True),  # 406
        ("DELETE", "/Patient/rl4-px", good, None, True),  # 405
        ("GET", "/Patient?bogus-param=1", good, None, False),  # 400
        ("GET", "/Nonsense/1", good, None, False),  # 404, unroutable
        ("GET", "/Observation/unknown-id", good, None, False),  # 404, unknown resource
    ]
    before = await endpoint.store.read(count_audit_events)
    statuses = []
    for method, url, headers, body, _ in requests:
        content = {"content-type": "application/fhir+json"} if body else {}
        response = await endpoint.client.request(method, url, headers={**headers, **content}, content=body)
        statuses.append(response.status_code)
    assert {403, 405, 406, 400, 404, 200} <= set(statuses), statuses
    after = await endpoint.store.read(count_audit_events)
    assert after - before == len(requests)

    trail = await endpoint.client.get(
        "/AuditEvent", params={"patient": "rbk-px", "_count": "200"}, headers=endpoint.token("user/AuditEvent.rs")
    )
    assert trail.status_code == 200
    events = [e["resource"] for e in trail.json()["entry"]]
    by_golden = await endpoint.client.get(
        "/AuditEvent", params={"patient": person, "_count": "200"}, headers=endpoint.token("user/AuditEvent.rs")
    )
    # the same trail by the golden id (plus the event of the search just made, newest first)
    assert [e["resource"]["id"] for e in by_golden.json()["entry"]][1:] == [e["id"] for e in events]
    naming = [r for r in requests if r[4]]
    # every request that named or touched the person is found by a source id of it
    assert len(events) == len(naming), [_query(e) for e in events]
    for event in events:
        assert _who(event) == ("912345678901", "RL4", "directcare"), _query(event)
        assert f"Patient/{person}" in _patients(event), _query(event)
        assert {"Patient/rl4-px", "Patient/rbk-px"} & _patients(event), _query(event)


async def test_a_source_record_read_names_its_person(linked: tuple[Endpoint, str]) -> None:
    """Reading one trust's record files the event under the golden id too (and not only under the record)."""
    endpoint, person = linked
    assert (await endpoint.client.get("/Patient/rl4-px", headers=endpoint.token())).status_code == 200
    trail = await endpoint.client.get(
        "/AuditEvent", params={"patient": person}, headers=endpoint.token("user/AuditEvent.rs")
    )
    newest = trail.json()["entry"][-1]["resource"] if trail.json().get("entry") else None
    assert newest is not None
    assert {f"Patient/{person}", "Patient/rl4-px"} <= set().union(
        *(_patients(e["resource"]) for e in trail.json()["entry"])
    )
