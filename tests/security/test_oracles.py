"""Adversarial tests: each tries to extract a hidden fact the way an attacker would (counting, filtering,
including, paging) and fails if it can. Numbers refer to the items of the information-governance issue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM, V3_ACT_CODE_SYSTEM
from support.security_world import (
    OBJECTOR_CODES,
    OBJECTOR_NHS,
    RESTRICTED_CITY,
    RESTRICTED_PHONE,
    RESTRICTED_POSTCODE,
    SECRET_GP_ODS,
    SNOMED,
    UNKNOWN_NHS,
    Endpoint,
    entry_ids,
    secured,
    total,
)

pytestmark = pytest.mark.anyio

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


@pytest.fixture
async def endpoint(store_url: str, tmp_path: Path) -> AsyncIterator[Endpoint]:
    """The secured endpoint over the world with everything to hide (SQLite and PostgreSQL)."""
    async with secured(store_url, tmp_path) as opened:
        yield opened


async def _count(endpoint: Endpoint, path: str, params: dict[str, str], headers: dict[str, str]) -> int | None:
    response = await endpoint.client.get(path, params={**params, "_count": "0"}, headers=headers)
    return total(response)


async def test_1_counts_never_reveal_an_objectors_conditions(endpoint: Endpoint) -> None:
    """Probe condition codes against the objector's NHS number with _count=0 and _summary=count: every probe
    answers exactly as for an unknown NHS number (0), so no code can be recovered."""
    good = endpoint.token()
    probes = (*OBJECTOR_CODES, "38341003", "22298006")
    recovered = []
    for code in probes:
        for nhs in (OBJECTOR_NHS, UNKNOWN_NHS):
            params = {"patient.identifier": f"{NHS_NUMBER_SYSTEM}|{nhs}", "code": f"{SNOMED}|{code}"}
            counted = await _count(endpoint, "/Condition", params, good)
            summary = await endpoint.client.get("/Condition", params={**params, "_summary": "count"}, headers=good)
            if counted != 0 or total(summary) != 0:
                recovered.append((nhs, code, counted, total(summary)))
    assert recovered == []
    # the same probes do work for an ordinary patient: the oracle is closed, not the feature
    ordinary = {"patient.identifier": f"{NHS_NUMBER_SYSTEM}|9990000018", "code": f"{SNOMED}|38341003"}
    assert await _count(endpoint, "/Condition", ordinary, good) == 1


async def test_1_everything_and_search_totals_count_only_what_is_shown(endpoint: Endpoint) -> None:
    """Totals agree with the entries a caller can page through (no count of withheld records)."""
    good = endpoint.token()
    for path, params in (
        ("/Observation", {"code": "2345-7"}),
        ("/Encounter", {}),
        ("/Condition", {}),
        ("/Patient", {}),
        ("/Patient/p1/$everything", {}),
    ):
        response = await endpoint.client.get(path, params={**params, "_count": "200"}, headers=good)
        shown = [e for e in response.json().get("entry", []) if e.get("search", {}).get("mode") == "match"]
        assert total(response) == len(shown), path
        assert await _count(endpoint, path, params, good) == len(shown), path


async def test_1_postcode_letter_by_letter_is_not_recoverable(endpoint: Endpoint) -> None:
    """address-postalcode prefixes against the restricted patient's NHS number: never a hit."""
    good = endpoint.token()
    hits = []
    for length in range(1, len(RESTRICTED_POSTCODE) + 1):
        prefix = RESTRICTED_POSTCODE[:length]
        params = {"identifier": f"{NHS_NUMBER_SYSTEM}|9990000034", "address-postalcode": prefix}
        if await _count(endpoint, "/Patient", params, good) != 0:
            hits.append(prefix)
    assert hits == []


async def test_1_sensitive_attendance_is_not_countable(endpoint: Endpoint) -> None:
    """Encounter?_security=…|SEX&_count=0 reveals nothing without the sensitive grant."""
    good = endpoint.token()
    assert await _count(endpoint, "/Encounter", {"_security": f"{V3_ACT_CODE_SYSTEM}|SEX"}, good) == 0
    assert await _count(endpoint, "/Condition", {"_security": f"{V3_ACT_CODE_SYSTEM}|HIV"}, good) == 0
    assert await _count(endpoint, "/Encounter", {"service-provider": "Organization/org-sexual-health"}, good) == 0
    granted = endpoint.token("user/*.rs bcconnect/sensitive.read")
    assert await _count(endpoint, "/Encounter", {"_security": f"{V3_ACT_CODE_SYSTEM}|SEX"}, granted) == 1


async def test_1_a_patient_scoped_token_cannot_count_another_patient(endpoint: Endpoint) -> None:
    """A patient/ token for p1 counts 0 for p3's encounters and for p3 by NHS number."""
    confined = endpoint.token("patient/*.rs", patient="p1")
    assert await _count(endpoint, "/Encounter", {"patient": "p3"}, confined) == 0
    assert await _count(endpoint, "/Patient", {"identifier": f"{NHS_NUMBER_SYSTEM}|9990000034"}, confined) == 0
    assert await _count(endpoint, "/Observation", {}, confined) == 3


async def test_2_hidden_fields_never_match_a_filter(endpoint: Endpoint) -> None:
    """Street, city, postcode, phone, email and GP of a restricted patient do not match, even with the
    sensitive grant; treating them as absent is consistent (:missing=true matches)."""
    for headers in (endpoint.token(), endpoint.token("user/*.rs bcconnect/sensitive.read")):
        for param, value in (
            ("address-postalcode", RESTRICTED_POSTCODE),
            ("address-postalcode", "WV"),
            ("address-city", RESTRICTED_CITY),
            ("address", "Hidden"),
            ("phone", RESTRICTED_PHONE),
            ("telecom", RESTRICTED_PHONE),
            ("email", "hidden@example.org"),
            ("general-practitioner", "Organization/gp-secret"),
            ("general-practitioner.identifier", f"{ODS}|{SECRET_GP_ODS}"),
        ):
            response = await endpoint.client.get("/Patient", params={param: value, "_count": "0"}, headers=headers)
            assert total(response) == 0, (param, value)
        missing = await endpoint.client.get(
            "/Patient", params={"_id": "p3", "address:missing": "true"}, headers=headers
        )
        assert entry_ids(missing) == ["Patient/p3"]
        located = await endpoint.client.get("/Encounter", params={"location": "Location/loc-secret"}, headers=headers)
        assert entry_ids(located) == []


async def test_2_sorting_on_a_hidden_field_reveals_nothing(endpoint: Endpoint) -> None:
    """_sort=address-postalcode puts the restricted patient last in both directions (as if it had none)."""
    good = endpoint.token()
    for order in ("address-postalcode", "-address-postalcode"):
        response = await endpoint.client.get("/Patient", params={"_sort": order}, headers=good)
        assert entry_ids(response)[-1] == "Patient/p3", order


async def test_3_a_restricted_patients_gp_is_never_included(endpoint: Endpoint) -> None:
    """_include=Patient:general-practitioner and every page of $everything: no gp-secret, no loc-secret."""
    good = endpoint.token("user/*.rs bcconnect/sensitive.read")
    response = await endpoint.client.get(
        "/Patient", params={"_id": "p3", "_include": "Patient:general-practitioner"}, headers=good
    )
    assert entry_ids(response) == ["Patient/p3"]
    response = await endpoint.client.get(
        "/Encounter", params={"patient": "p3", "_include": "Encounter:location"}, headers=good
    )
    assert entry_ids(response) == ["Encounter/e3"]
    seen: list[str] = []
    url: str | None = "/Patient/p3/$everything?_count=1"
    while url:
        page = await endpoint.client.get(url, headers=good)
        seen += entry_ids(page)
        url = {link["relation"]: link["url"] for link in page.json()["link"]}.get("next")
    assert "Organization/gp-secret" not in seen
    assert "Location/loc-secret" not in seen
    assert "Encounter/e3" in seen
    assert SECRET_GP_ODS not in str(seen)


async def test_4_includes_come_only_from_rows_that_survive_the_screen(endpoint: Endpoint) -> None:
    """The objector's and the sensitive encounters' organisations are never included."""
    good = endpoint.token()
    for params in (
        {"patient": "p2", "_include": "Encounter:service-provider"},
        {"subject.identifier": f"{NHS_NUMBER_SYSTEM}|{OBJECTOR_NHS}", "_include": "Encounter:service-provider"},
    ):
        response = await endpoint.client.get("/Encounter", params=params, headers=good)
        assert entry_ids(response) == []
    response = await endpoint.client.get(
        "/Encounter", params={"patient": "p1", "_include": "Encounter:service-provider"}, headers=good
    )
    assert sorted(entry_ids(response)) == ["Encounter/e1", "Organization/org-acute"]
    response = await endpoint.client.get(
        "/Organization", params={"_id": "org-objector-only", "_revinclude": "Encounter:service-provider"}, headers=good
    )
    assert entry_ids(response) == ["Organization/org-objector-only"]
    response = await endpoint.client.get(
        "/Organization", params={"_id": "org-sexual-health", "_revinclude": "Encounter:service-provider"}, headers=good
    )
    assert entry_ids(response) == ["Organization/org-sexual-health"]
    everything = await endpoint.client.get("/Patient/p1/$everything", params={"_count": "200"}, headers=good)
    assert "Organization/org-sexual-health" not in entry_ids(everything)
    assert "Encounter/e-sex" not in entry_ids(everything)


async def test_5_scopes_hold_on_every_resource_a_response_carries(endpoint: Endpoint) -> None:
    """user/Patient.rs: $everything and _revinclude carry Patients only; user/Encounter.rs: no Patient through
    _include; AuditEvent is never reached through a wildcard."""
    patients_only = endpoint.token("user/Patient.rs")
    assert (await endpoint.client.get("/Encounter", params={"patient": "p1"}, headers=patients_only)).status_code == 403
    everything = await endpoint.client.get("/Patient/p1/$everything", params={"_count": "200"}, headers=patients_only)
    assert {i.split("/")[0] for i in entry_ids(everything)} == {"Patient"}
    revinclude = await endpoint.client.get(
        "/Patient", params={"_id": "p1", "_revinclude": "Encounter:subject"}, headers=patients_only
    )
    assert entry_ids(revinclude) == ["Patient/p1"]
    encounters_only = endpoint.token("user/Encounter.rs")
    included = await endpoint.client.get(
        "/Encounter",
        params={"patient": "p1", "_include": ["Encounter:subject", "Encounter:service-provider"]},
        headers=encounters_only,
    )
    assert {i.split("/")[0] for i in entry_ids(included)} == {"Encounter"}
    history = await endpoint.client.get("/Patient/p1/_history", headers=encounters_only)
    assert history.status_code == 403


async def test_6_a_patient_scoped_token_reads_only_its_own_audit_trail(endpoint: Endpoint) -> None:
    """patient/AuditEvent.rs confined to p1 gets nothing about p3 (as for an unknown patient), and its own."""
    clinician = endpoint.token()
    for _ in range(3):
        assert (await endpoint.client.get("/Patient/p3", headers=clinician)).status_code == 200
        assert (await endpoint.client.get("/Patient/p1", headers=clinician)).status_code == 200
    confined = endpoint.token("patient/AuditEvent.rs", patient="p1")
    other = await endpoint.client.get("/AuditEvent", params={"patient": "p3"}, headers=confined)
    unknown = await endpoint.client.get("/AuditEvent", params={"patient": "nobody"}, headers=confined)
    assert entry_ids(other) == [] == entry_ids(unknown)
    own = await endpoint.client.get("/AuditEvent", params={"patient": "p1"}, headers=confined)
    assert len(entry_ids(own)) >= 3
    assert "10.1.2.3" not in other.text


async def test_11_an_objector_looks_exactly_like_an_unknown_person(endpoint: Endpoint) -> None:
    """Byte for byte (after the links, which echo the query): read, search, count, _include and $everything."""
    good = endpoint.token()

    async def shape(nhs: str, pid: str) -> list[object]:
        out: list[object] = []
        for path, params in (
            ("/Patient", {"identifier": f"{NHS_NUMBER_SYSTEM}|{nhs}"}),
            ("/Patient", {"identifier": f"{NHS_NUMBER_SYSTEM}|{nhs}", "_summary": "count"}),
            ("/Condition", {"patient.identifier": f"{NHS_NUMBER_SYSTEM}|{nhs}", "_include": "Condition:subject"}),
            ("/Encounter", {"patient": pid, "_revinclude": "Observation:encounter"}),
        ):
            body = (await endpoint.client.get(path, params=params, headers=good)).json()
            body.pop("link", None)
            body.pop("id", None)
            body.get("meta", {}).pop("lastUpdated", None)
            out.append(body)
        for path in (f"/Patient/{pid}", f"/Patient/{pid}/$everything", f"/Patient/{pid}/_history"):
            response = await endpoint.client.get(path, headers=good)
            out.append((response.status_code, response.text.replace(pid, "<id>")))
        return out

    assert await shape(OBJECTOR_NHS, "p2") == await shape(UNKNOWN_NHS, "p-unknown")
