"""The secured FHIR endpoint end to end: 401/403/429 with OperationOutcomes, one AuditEvent per request,
objection and sensitivity filtering on read, search, _include, $everything and paging, and the audit search."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM, V3_ACT_CODE_SYSTEM, V3_CONFIDENTIALITY_SYSTEM
from bcconnect.security import (
    SENSITIVE_SCOPE,
    count_audit_events,
    ensure_local_issuer,
    search_audit_events,
    verify_audit_chain,
)
from bcconnect.store import ResourceWrite, Store, Tx
from support.security_world import OBJECTOR_NHS, Endpoint, secured, write

OBJECTOR_FAMILY = "Objectorfamily"
RESTRICTED_POSTCODE = "DY1 9ZZ"


def _patient(pid: str, family: str, nhs: str, **extra: Any) -> ResourceWrite:
    body = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
        "name": [{"family": family}],
        "generalPractitioner": [{"reference": "Organization/gp1"}],
        **extra,
    }
    return write(body, pid)


def _observation(oid: str, pid: str, day: int) -> ResourceWrite:
    return write(
        {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": f"2024-01-{day:02d}T10:00:00Z",
        },
        pid,
    )


def seed_record() -> list[ResourceWrite]:
    """p1 ordinary, p2 objecting (by NHS number), p3 restricted; observations of p1 and p2 interleaved."""
    writes = [
        write({"resourceType": "Organization", "id": "gp1", "name": "The Surgery"}),
        _patient("p1", "Ordinary", "9990000018"),
        _patient("p2", OBJECTOR_FAMILY, OBJECTOR_NHS),
        _patient(
            "p3",
            "Restricted",
            "9990000034",
            meta={"security": [{"system": V3_CONFIDENTIALITY_SYSTEM, "code": "R"}]},
            address=[{"postalCode": RESTRICTED_POSTCODE}],
        ),
        write(
            {
                "resourceType": "Condition",
                "id": "c-std",
                "meta": {"security": [{"system": V3_ACT_CODE_SYSTEM, "code": "STD"}]},
                "subject": {"reference": "Patient/p1"},
            },
            "p1",
        ),
        write({"resourceType": "Condition", "id": "c-plain", "subject": {"reference": "Patient/p1"}}, "p1"),
    ]
    for day in range(1, 9):
        writes.append(_observation(f"o1-{day}", "p1", day))
        writes.append(_observation(f"o2-{day}", "p2", day))
    return writes


def secured_endpoint(store_url: str, data_dir: Path, **security: Any) -> AbstractAsyncContextManager[Endpoint]:
    """The secured endpoint over :func:`seed_record`, five to a page by default."""
    return secured(store_url, data_dir, records=seed_record(), default_count=5, max_count=50, **security)


pytestmark = pytest.mark.anyio


@pytest.fixture
async def endpoint(store_url: str, tmp_path: Path) -> AsyncIterator[Endpoint]:
    """A secured endpoint over SQLite or PostgreSQL."""
    # a burst large enough for the longest test here (the rate limit has its own test): every request counts,
    # unroutable ones too, since the caller is authenticated before routing
    async with secured_endpoint(store_url, tmp_path, rate_limit_burst=2_000) as opened:
        yield opened


def outcome(response: httpx.Response) -> dict[str, Any]:
    """The OperationOutcome of an error response (and no stack trace in it)."""
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert "Traceback" not in response.text
    return body


async def audit_count(endpoint: Endpoint) -> int:
    return await endpoint.store.read(count_audit_events)


def bundle_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in response.json().get("entry", [])
        if e.get("search", {}).get("mode") != "outcome"
    ]


def says_withheld(response: httpx.Response) -> bool:
    return any(
        e.get("search", {}).get("mode") == "outcome"
        and any(i.get("code") == "suppressed" for i in e["resource"]["issue"])
        for e in response.json().get("entry", [])
    )


async def test_refusals_have_the_right_status_an_outcome_and_one_audit_event_each(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    """No token, expired, wrong issuer, wrong audience, forged, wrong scope, missing purpose: 401 or 403."""
    other = ensure_local_issuer(tmp_path / "other", issuer="urn:someone-else")
    same_iss_other_key = ensure_local_issuer(tmp_path / "forger")
    wrong_audience = ensure_local_issuer(tmp_path, audience="urn:another-api")
    cases: list[tuple[str, dict[str, str], int]] = [
        ("no token", {}, 401),
        ("not bearer", {"authorization": "Basic dTpw"}, 401),
        ("expired", endpoint.token(now=time.time() - 7200, ttl=60), 401),
        ("wrong issuer", {"authorization": "Bearer " + other.issue(scopes="user/*.rs", user="u", org="RL4")}, 401),
        (
            "wrong audience",
            {"authorization": "Bearer " + wrong_audience.issue(scopes="user/*.rs", user="u", org="RL4")},
            401,
        ),
        (
            "forged signature",
            {"authorization": "Bearer " + same_iss_other_key.issue(scopes="user/*.rs", user="u", org="RL4")},
            401,
        ),
        ("wrong scope", endpoint.token("user/Observation.rs"), 403),
        ("missing purpose", endpoint.token(purpose=""), 403),
        ("other purpose", endpoint.token(purpose="research"), 403),
    ]
    for name, headers, status in cases:
        before = await audit_count(endpoint)
        response = await endpoint.client.get("/Patient/p1", headers=headers)
        assert response.status_code == status, name
        issue = outcome(response)["issue"][0]
        assert issue["code"] == ("login" if status == 401 else "forbidden"), name
        if status == 401:
            assert response.headers["www-authenticate"].startswith('Bearer realm="bcconnect"'), name
        assert await audit_count(endpoint) == before + 1, name
        assert b"Ordinary" not in response.content


async def test_n_requests_give_exactly_n_audit_events(endpoint: Endpoint) -> None:
    """Allowed, refused, unknown paths, writes and metadata: each request writes one event; the chain holds."""
    good = endpoint.token()
    requests = [
        ("GET", "/Patient/p1", good),
        ("GET", "/Patient?name=Ordinary", good),
        ("GET", "/Patient/p1", {}),
        ("POST", "/Patient", good),
        ("GET", "/Nonsense/x", good),
        ("GET", "/metadata", {}),
        ("GET", "/Patient/p2", good),
        ("GET", "/Patient/p1/$everything", good),
    ]
    before = await audit_count(endpoint)
    for method, path, headers in requests:
        response = await endpoint.client.request(method, path, headers=headers)
        assert response.status_code < 500
    assert await audit_count(endpoint) == before + len(requests)
    assert (await endpoint.store.read(verify_audit_chain)).ok


async def test_an_objecting_patient_is_withheld_from_read_search_everything_and_include(endpoint: Endpoint) -> None:
    """p2 objects: 404 on read and $everything; absent from searches and includes, which answer exactly as if p2
    did not exist (no "withheld" notice: that would be a one-bit signal that the person is known)."""
    good = endpoint.token()
    assert (await endpoint.client.get("/Patient/p2", headers=good)).status_code == 404
    assert (await endpoint.client.get("/Patient/p2/_history/1", headers=good)).status_code == 404
    assert (await endpoint.client.get("/Patient/p2/$everything", headers=good)).status_code == 404
    response = await endpoint.client.get("/Patient", params={"_count": "50"}, headers=good)
    assert "Patient/p2" not in bundle_ids(response)
    assert not says_withheld(response)
    assert OBJECTOR_FAMILY.encode() not in response.content
    response = await endpoint.client.get(
        "/Observation", params={"patient": "p2", "_include": "Observation:subject"}, headers=good
    )
    assert bundle_ids(response) == []
    assert not says_withheld(response)
    response = await endpoint.client.get(
        "/Observation", params={"code": "2345-7", "_include": "Observation:subject", "_count": "50"}, headers=good
    )
    ids = bundle_ids(response)
    assert "Patient/p1" in ids
    assert not any(i.startswith("Observation/o2-") or i == "Patient/p2" for i in ids)
    events = await endpoint.store.read(lambda tx: search_audit_events(tx, patient="p2"))
    assert events, "the attempts on p2 are audited"


async def test_paging_never_leaks_or_repeats_when_matches_are_withheld(endpoint: Endpoint) -> None:
    """Pages of 5 over interleaved p1/p2 observations: every p1 observation exactly once, no p2 ones."""
    good = endpoint.token()
    seen: list[str] = []
    url: str | None = "/Observation?code=2345-7&_count=5&_sort=date"
    while url:
        response = await endpoint.client.get(url, headers=good)
        seen += bundle_ids(response)
        links = {link["relation"]: link["url"] for link in response.json()["link"]}
        url = links.get("next")
    assert sorted(seen) == sorted(f"Observation/o1-{d}" for d in range(1, 9))


async def test_sensitive_records_need_the_sensitive_scope(endpoint: Endpoint) -> None:
    """The STD-labelled Condition is hidden (read 404, absent from searches and their totals) unless the token
    grants sensitive data."""
    plain, sensitive = endpoint.token(), endpoint.token(f"user/*.rs {SENSITIVE_SCOPE}")
    assert (await endpoint.client.get("/Condition/c-std", headers=plain)).status_code == 404
    response = await endpoint.client.get("/Condition", params={"patient": "p1"}, headers=plain)
    assert bundle_ids(response) == ["Condition/c-plain"]
    assert response.json()["total"] == 1
    assert not says_withheld(response)
    everything = await endpoint.client.get("/Patient/p1/$everything", params={"_count": "50"}, headers=plain)
    assert "Condition/c-std" not in bundle_ids(everything)
    assert not says_withheld(everything)
    response = await endpoint.client.get("/Condition", params={"patient": "p1"}, headers=sensitive)
    assert sorted(bundle_ids(response)) == ["Condition/c-plain", "Condition/c-std"]
    assert not says_withheld(response)


async def test_a_restricted_patient_never_shows_address_or_gp(endpoint: Endpoint) -> None:
    """p3 (R) is served without address and GP, even with the sensitive grant."""
    response = await endpoint.client.get("/Patient/p3", headers=endpoint.token(f"user/*.rs {SENSITIVE_SCOPE}"))
    assert response.status_code == 200
    assert RESTRICTED_POSTCODE.encode() not in response.content
    assert "generalPractitioner" not in response.json()


async def test_patient_scopes_confine_answers_to_the_tokens_patient(endpoint: Endpoint) -> None:
    """A patient/ token for p1 sees p1's observations only and cannot read p3."""
    token = endpoint.token("patient/*.rs", patient="p1")
    response = await endpoint.client.get("/Observation", params={"code": "2345-7", "_count": "50"}, headers=token)
    assert all(i.startswith("Observation/o1-") for i in bundle_ids(response))
    assert (await endpoint.client.get("/Patient/p3", headers=token)).status_code == 404


async def test_the_audit_trail_is_searchable_only_with_an_audit_scope(endpoint: Endpoint) -> None:
    """AuditEvent?patient=p1 needs a scope naming AuditEvent; the answer lists who looked."""
    await endpoint.client.get("/Patient/p1", headers=endpoint.token(user="111111111111"))
    assert (
        await endpoint.client.get("/AuditEvent", params={"patient": "p1"}, headers=endpoint.token())
    ).status_code == 403
    auditor = endpoint.token("user/AuditEvent.rs")
    response = await endpoint.client.get("/AuditEvent", params={"patient": "Patient/p1"}, headers=auditor)
    assert response.status_code == 200
    users = [
        agent["who"].get("identifier", {}).get("value")
        for e in response.json()["entry"]
        for agent in e["resource"]["agent"]
        if agent.get("requestor")
    ]
    assert "111111111111" in users
    assert (await endpoint.client.get("/AuditEvent", headers=auditor)).status_code == 400


async def test_over_the_rate_limit_is_429_with_retry_after(store_url: str, tmp_path: Path) -> None:
    """Burst 3: the fourth request is 429 with Retry-After and an OperationOutcome, and is audited."""
    async with secured_endpoint(store_url, tmp_path, rate_limit_burst=3, rate_limit_per_second=0.01) as ep:
        token = ep.token()
        for _ in range(3):
            assert (await ep.client.get("/Patient/p1", headers=token)).status_code == 200
        response = await ep.client.get("/Patient/p1", headers=token)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert outcome(response)["issue"][0]["code"] == "throttled"
        assert await audit_count(ep) == 4


async def test_queries_over_the_limits_are_400(endpoint: Endpoint) -> None:
    """Too long, too many includes, too deep a chain: 400 with an OperationOutcome."""
    good = endpoint.token()
    for params in (
        {"name": "x" * 5000},
        {"subject.organization.partof.name": "x"},
    ):
        response = await endpoint.client.get("/Observation", params=params, headers=good)
        assert response.status_code == 400
        outcome(response)


INJECTIONS = [
    "' OR '1'='1",
    "1; DROP TABLE resources; --",
    '" OR 1=1 --',
    "x') UNION SELECT body FROM resource_versions --",
    "%' OR 1=1 --",
    "p2' --",
    "'; DELETE FROM patient_objections; --",
    "1) OR (1=1",
    "\\'; UPDATE audit_events SET body = '' --",
    "\x00",
]
#: (resource type, parameter) pairs covering every search parameter type and the result parameters
INJECTED_PARAMS = [
    ("Patient", "name"),  # string
    ("Patient", "identifier"),  # token
    ("Patient", "birthdate"),  # date
    ("Observation", "subject"),  # reference
    ("Observation", "value-quantity"),  # quantity
    ("Observation", "code:text"),  # token modifier
    ("Observation", "patient:Patient.name"),  # chain
    ("Patient", "_id"),
    ("Patient", "_sort"),
    ("Patient", "_count"),
    ("Observation", "_include"),
    ("Patient", "_elements"),
    ("Patient", "_summary"),
    ("Patient", "_page_token"),
]


async def _fingerprint(store: Store) -> tuple[int, int, int, bool]:
    def run(tx: Tx) -> tuple[int, int, int, bool]:
        resources = tx.query_one("SELECT COUNT(*) FROM resources")
        versions = tx.query_one("SELECT COUNT(*) FROM resource_versions")
        objections = tx.query_one("SELECT COUNT(*) FROM patient_objections")
        assert resources
        assert versions
        assert objections
        return int(resources[0]), int(versions[0]), int(objections[0]), verify_audit_chain(tx).ok

    return await store.read(run)


async def test_sql_injection_in_every_parameter_type_changes_and_leaks_nothing(endpoint: Endpoint) -> None:
    """Injection strings in each parameter type, in ids and in headers: no 5xx, no leak, the database unchanged."""
    good = endpoint.token()
    before = await _fingerprint(endpoint.store)
    for payload in INJECTIONS:
        for resource_type, name in INJECTED_PARAMS:
            response = await endpoint.client.get(f"/{resource_type}", params={name: payload}, headers=good)
            assert response.status_code < 500, (name, payload, response.text)
            assert OBJECTOR_FAMILY.encode() not in response.content, (name, payload)
            assert "Traceback" not in response.text
        response = await endpoint.client.get(f"/Patient/{quote(payload, safe='')}", headers=good)
        assert response.status_code in (400, 404), payload
        response = await endpoint.client.get("/Patient/p1", headers={"authorization": f"Bearer {payload}".strip()})
        assert response.status_code == 401
    after = await _fingerprint(endpoint.store)
    assert after[:3] == before[:3]
    assert after[3]


# --- property-based: generated queries and headers never produce a 5xx or a stack trace ------------------
_PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)
_PARAM_NAMES = st.sampled_from(
    [
        "name",
        "identifier",
        "birthdate",
        "subject",
        "patient",
        "code",
        "date",
        "_id",
        "_count",
        "_sort",
        "_include",
        "_revinclude",
        "_elements",
        "_summary",
        "_page_token",
        "_getpagesoffset",
        "_format",
        "_pretty",
        "value-quantity",
        "subject:Patient.name",
        "_has:Observation:patient:code",
        "_since",
        "_type",
    ]
) | st.text(_PRINTABLE, min_size=1, max_size=20)
_QUERY = st.lists(st.tuples(_PARAM_NAMES, st.text(_PRINTABLE, max_size=40)), max_size=6)
_KNOWN_PATHS = st.sampled_from(
    [
        "/Patient",
        "/Observation",
        "/Condition",
        "/Patient/p1",
        "/Patient/p2",
        "/Patient/p1/$everything",
        "/Patient/p1/_history",
        "/Patient/p1/_history/1",
        "/AuditEvent",
        "/metadata",
        "/",
    ]
)
_RANDOM_PATHS = st.text(_PRINTABLE, max_size=30).map(lambda t: "/" + quote(t, safe="/$_"))
# weighted towards real endpoints so most examples get past routing and authentication
_PATHS = st.one_of(_KNOWN_PATHS, _KNOWN_PATHS, _KNOWN_PATHS, _RANDOM_PATHS)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BlockingPortal, Endpoint]]:
    """One secured endpoint on SQLite, served from a portal thread so hypothesis can drive it synchronously."""
    data_dir = tmp_path_factory.mktemp("fuzz")
    with start_blocking_portal(backend="asyncio") as portal:
        manager = secured_endpoint(f"sqlite:///{data_dir / 'store.db'}", data_dir, rate_limit_burst=100_000)
        with portal.wrap_async_context_manager(manager) as opened:
            yield portal, opened


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=_PATHS,
    query=_QUERY,
    auth=st.one_of(st.sampled_from(["good", "good", "sensitive", "none"]), st.text(_PRINTABLE, max_size=60)),
    accept=st.one_of(st.none(), st.none(), st.none(), st.text(_PRINTABLE, max_size=30)),
    method=st.sampled_from(["GET"] * 8 + ["HEAD", "POST", "DELETE"]),
)
def test_generated_requests_never_get_a_5xx_or_a_stack_trace(
    fuzz_target: tuple[BlockingPortal, Endpoint],
    path: str,
    query: list[tuple[str, str]],
    auth: str,
    accept: str | None,
    method: str,
) -> None:
    """Whatever the path, query and headers, the answer is a FHIR answer below 500 with no Python internals."""
    portal, endpoint = fuzz_target
    headers = {"good": endpoint.token(), "sensitive": endpoint.token(f"user/*.rs {SENSITIVE_SCOPE}")}.get(auth)
    if headers is None:
        headers = {} if auth == "none" else {"authorization": auth.strip()}
    if accept is not None:
        headers["accept"] = accept.strip()
    url = path + ("?" + urlencode(query) if query else "")
    response = portal.call(lambda: endpoint.client.request(method, url, headers=headers))
    event(f"status {response.status_code}")  # --hypothesis-show-statistics shows how deep the examples got
    assert response.status_code < 500, (method, url, response.text)
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    assert OBJECTOR_FAMILY not in response.text
