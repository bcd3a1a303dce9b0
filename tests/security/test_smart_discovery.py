"""SMART App Launch discovery (issue item 12): ``.well-known/smart-configuration`` and ``rest.security`` in the
CapabilityStatement, served over loopback HTTP and found by a real SMART client (fhirclient)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest

from bcconnect.config import ApiSettings, AuthSettings, Settings, StoreSettings
from support.loopback import serving_in_thread

AUTHORIZE = "https://idp.example.nhs.uk/authorize"
TOKEN = "https://idp.example.nhs.uk/token"


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    """The endpoint served by uvicorn on a free loopback port, with the IdP's endpoints configured."""
    yield from _served(tmp_path, AuthSettings(authorization_endpoint=AUTHORIZE, token_endpoint=TOKEN))


@pytest.fixture
def base_url_without_idp(tmp_path: Path) -> Iterator[str]:
    """The endpoint with no authorisation server configured (bearer JWTs only)."""
    yield from _served(tmp_path, AuthSettings())


def _served(tmp_path: Path, auth: AuthSettings) -> Iterator[str]:
    with serving_in_thread(
        lambda port: Settings(
            store=StoreSettings(url=f"sqlite:///{tmp_path / 'store.db'}"),
            api=ApiSettings(host="127.0.0.1", port=port),
            auth=auth,
            root=tmp_path,
        )
    ) as base:
        yield base


@pytest.mark.anyio
async def test_well_known_smart_configuration_is_served_without_a_token(base_url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base_url}/.well-known/smart-configuration")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["authorization_endpoint"] == AUTHORIZE
    assert document["token_endpoint"] == TOKEN
    assert "permission-v2" in document["capabilities"]
    assert "S256" in document["code_challenge_methods_supported"]


@pytest.mark.anyio
async def test_fhirclient_finds_the_oauth_endpoints_in_the_capability_statement(base_url: str) -> None:
    def discover() -> tuple[Any, str]:
        from fhirclient import client as fhir_client

        smart = fhir_client.FHIRClient(
            settings={"app_id": "bcconnect-test", "api_base": base_url, "redirect_uri": "http://127.0.0.1/cb"}
        )
        smart.prepare()  # reads the CapabilityStatement and picks the auth method from rest.security
        return smart.server.auth, str(smart.authorize_url)

    auth, authorize_url = await anyio.to_thread.run_sync(discover)
    assert auth.auth_type == "oauth2"
    assert auth._token_uri == TOKEN
    assert authorize_url.startswith(AUTHORIZE)


@pytest.mark.anyio
async def test_without_an_authorisation_server_smart_is_neither_claimed_nor_discovered(
    base_url_without_idp: str,
) -> None:
    """A discovery document without its REQUIRED token_endpoint would mislead a SMART client: 404 with an
    OperationOutcome instead, and the CapabilityStatement does not claim SMART-on-FHIR."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base_url_without_idp}/.well-known/smart-configuration")
        statement = (await client.get(f"{base_url_without_idp}/metadata")).json()
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "token_endpoint" in response.text
    security = statement["rest"][0]["security"]
    assert "service" not in security
    assert "token_endpoint" in security["description"]
