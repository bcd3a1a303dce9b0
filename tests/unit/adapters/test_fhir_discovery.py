"""A FHIR source read the way its server describes itself: SMART discovery of the token endpoint, the
CapabilityStatement deciding the types, and a failing type isolated by its own breaker."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

import httpx
import pytest

from bcconnect.adapters import FhirApiSource, open_source
from bcconnect.config import BreakerSettings, SourceAuthSettings, SourceAuthType
from bcconnect.errors import SourceAuthError

pytestmark = pytest.mark.anyio

BASE = "https://trust.test/api/fhir"  # a FHIR base that is not <host>/fhir/R4


def _bundle(*resources: dict[str, Any], total: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if total is not None:
        body["total"] = total
    return body


def _res(rtype: str, rid: str) -> dict[str, Any]:
    return {"resourceType": rtype, "id": rid, "meta": {"versionId": "1", "lastUpdated": "2026-11-22T09:00:00.000Z"}}


class Server:
    """A FHIR server under /api/fhir with SMART discovery, a CapabilityStatement and one broken type."""

    def __init__(self, *, broken: str | None = None, discovery: bool = True) -> None:
        self.broken = broken
        self.discovery = discovery
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths.append(path)
        if path == "/api/fhir/.well-known/smart-configuration":
            if not self.discovery:
                return httpx.Response(404)
            return httpx.Response(200, json={"token_endpoint": "https://auth.trust.test/connect/token"})
        if path == "/connect/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        if path == "/api/fhir/metadata":
            types = ["Patient", "Immunization", "Procedure", "Basic"]
            resource = [
                {
                    "type": t,
                    "interaction": [{"code": "search-type"}],
                    "searchParam": [{"name": "patient", "type": "reference"}],
                }
                for t in types
            ]
            resource.append({"type": "Binary", "interaction": [{"code": "read"}]})  # read-only: not paged
            return httpx.Response(
                200, json={"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": resource}]}
            )
        rtype = path.rsplit("/", 1)[-1]
        if request.url.params.get("_summary") == "count":
            return httpx.Response(200, json=_bundle(total=7))
        if rtype == self.broken:
            return httpx.Response(500, json={"resourceType": "OperationOutcome"})
        return httpx.Response(200, json=_bundle(_res(rtype, f"{rtype.lower()}-1")))


def _config(make_config: Any, **fetch: Any) -> Any:
    config = make_config(max_retries=1, backoff_base_seconds=0.0, backoff_max_seconds=0.0, **fetch)
    auth = SourceAuthSettings(
        type=SourceAuthType.OAUTH2_CLIENT_CREDENTIALS, client_id="e", client_secret_env="RL4_SECRET"
    )
    return replace(config, base_url=BASE, auth=auth, breaker=BreakerSettings(failure_threshold=2, reset_seconds=60))


async def _read(source: Any) -> list[Any]:
    async with contextlib.aclosing(source.pages(None)) as pages:
        return [page async for page in pages]


async def test_token_endpoint_is_discovered_and_offered_mapped_types_are_requested(
    make_config: Any, environ: Any
) -> None:
    server = Server()
    mapped = {"Patient", "Immunization", "Procedure", "Encounter"}
    async with open_source(
        _config(make_config), environ=environ, transport=httpx.MockTransport(server), mapped_types=mapped
    ) as source:
        assert isinstance(source, FhirApiSource)
        pages = await _read(source)
        plan = source.fetch_plan
    assert plan is not None
    assert plan.basis == "capability statement"
    assert plan.requested == ("Patient", "Immunization", "Procedure")  # Patient first: nothing waits as held
    assert plan.offered_not_mapped == {"Basic": 7}
    assert plan.mapped_not_offered == ("Encounter",)
    assert "Binary" not in plan.offered
    assert [r.source_key for p in pages for r in p.records] == [
        "Patient/patient-1",
        "Immunization/immunization-1",
        "Procedure/procedure-1",
    ]
    assert "/connect/token" in server.paths  # from .well-known/smart-configuration, not <base>/oauth2/token
    assert not any(p.endswith("/oauth2/token") or "/fhir/R4" in p for p in server.paths)


async def test_without_discovery_or_token_url_the_error_says_what_to_set(make_config: Any, environ: Any) -> None:
    async with open_source(
        _config(make_config), environ=environ, transport=httpx.MockTransport(Server(discovery=False))
    ) as source:
        with pytest.raises(SourceAuthError, match=r"set \[auth\] token_url"):
            await _read(source)


async def test_a_failing_type_does_not_block_the_types_after_it(make_config: Any, environ: Any) -> None:
    server = Server(broken="Immunization")
    mapped = {"Patient", "Immunization", "Procedure"}
    async with open_source(
        _config(make_config), environ=environ, transport=httpx.MockTransport(server), mapped_types=mapped
    ) as source:
        assert isinstance(source, FhirApiSource)
        pages = await _read(source)
        [failure] = source.failures
    assert [r.record_type for p in pages for r in p.records] == ["Patient", "Procedure"]
    assert failure.resource_type == "Immunization"
    assert failure.status == 500
    assert failure.url is not None
    assert failure.url.startswith(f"{BASE}/Immunization")
    assert "Immunization failed (HTTP 500 at https://trust.test/api/fhir/Immunization" in str(failure)
