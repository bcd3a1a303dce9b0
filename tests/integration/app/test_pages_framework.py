"""The /app/ pages framework behind the real security gate: sign-in, cookies, refusals, audit of every view."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bcconnect.api import create_app
from bcconnect.app import TOKEN_COOKIE, GatePageGuard, Page, PageContext, PagesApp, Rendered, tag
from bcconnect.config import AuthSettings, Settings
from bcconnect.security import LocalIssuer, SecurityGate, count_audit_events, ensure_local_issuer, search_audit_events
from bcconnect.store import Store, open_store
from bcconnect.view import View

pytestmark = pytest.mark.anyio


async def _hello(ctx: PageContext) -> Rendered:
    ctx.patients.add("p1")
    return Rendered(tag("p", f"hello {ctx.request.param('name', 'nobody')}"))


HELLO = Page("/hello", "Hello", _hello, resource_types=("Observation",), nav="Hello", description="a test page")


@dataclass
class Pages:
    client: httpx.AsyncClient
    store: Store
    issuer: LocalIssuer

    def token(self, scopes: str = "user/*.rs") -> str:
        return self.issuer.issue(scopes=scopes, user="912345678901", org="RL4")

    async def audits(self) -> int:
        return await self.store.read(count_audit_events)


@pytest.fixture
async def pages(store_url: str, tmp_path: Path) -> AsyncIterator[Pages]:
    """The FHIR app with the pages mounted at /app, both behind one security gate, in process."""
    issuer = ensure_local_issuer(tmp_path)
    settings = Settings(auth=AuthSettings(issuers=(issuer.as_jwt_issuer(),)), root=tmp_path)
    async with open_store(store_url) as store:
        gate = SecurityGate.from_settings(settings, store)
        app = create_app(
            settings, View(store), mounts={"/app": PagesApp([HELLO], guard=GatePageGuard(gate), prefix="/app")}
        )
        transport = httpx.ASGITransport(app=app, client=("10.0.0.9", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Pages(client, store, issuer)


async def test_a_browser_without_a_token_is_sent_to_sign_in_and_the_refusal_is_audited(pages: Pages) -> None:
    """No token: 303 to the sign-in form with the page to come back to; the refused view is an AuditEvent."""
    before = await pages.audits()
    response = await pages.client.get("/app/hello?name=x")
    assert response.status_code == 303
    assert response.headers["location"] == "/app/login?next=%2Fapp%2Fhello%3Fname%3Dx"
    assert await pages.audits() == before + 1
    form = await pages.client.get(response.headers["location"])
    assert form.status_code == 200
    assert 'name="token"' in form.text
    assert 'value="/app/hello?name=x"' in form.text


async def test_sign_in_sets_an_httponly_strict_cookie_and_pages_then_open(pages: Pages) -> None:
    """A good token posted to the form becomes an HttpOnly SameSite=Strict cookie scoped to /app; pages open."""
    response = await pages.client.post("/app/login", data={"token": pages.token(), "next": "/app/hello?name=Ann"})
    assert response.status_code == 303
    assert response.headers["location"] == "/app/hello?name=Ann"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{TOKEN_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/app" in cookie
    before = await pages.audits()
    page = await pages.client.get("/app/hello?name=Ann")
    assert page.status_code == 200
    assert "hello Ann" in page.text
    assert "912345678901" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script at all
    assert await pages.audits() == before + 1
    about_p1 = await pages.store.read(lambda tx: search_audit_events(tx, patient="Patient/p1"))
    assert about_p1
    assert base64.b64encode(b"GET /app/hello?name=Ann") in about_p1[0]  # AuditEvent.entity.query
    assert b"912345678901" in about_p1[0]
    out = await pages.client.post("/app/logout")
    assert out.status_code == 303
    assert "Max-Age=0" in out.headers["set-cookie"]


async def test_a_bad_token_at_sign_in_is_refused_and_audited(pages: Pages) -> None:
    """A forged token re-shows the form with the reason (401), sets no cookie, and is audited."""
    before = await pages.audits()
    response = await pages.client.post("/app/login", data={"token": "x.y.z", "next": "/app/"})
    assert response.status_code == 401
    assert "Sign-in failed" in response.text
    assert "set-cookie" not in response.headers
    assert await pages.audits() == before + 1


async def test_bearer_header_works_and_a_bad_one_gets_401_not_a_redirect(pages: Pages) -> None:
    """Programmatic callers use the Authorization header like on the FHIR endpoint."""
    good = await pages.client.get("/app/hello", headers={"authorization": f"Bearer {pages.token()}"})
    assert good.status_code == 200
    bad = await pages.client.get("/app/hello", headers={"authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"].startswith("Bearer")


async def test_a_token_without_the_pages_scopes_is_forbidden(pages: Pages) -> None:
    """The page reads Observation: a token limited to Patient gets 403, as the FHIR search would."""
    response = await pages.client.get(
        "/app/hello", headers={"authorization": f"Bearer {pages.token('user/Patient.rs')}"}
    )
    assert response.status_code == 403
    assert "hello" not in response.text


async def test_sign_in_never_redirects_off_site_and_refuses_cross_site_posts(pages: Pages) -> None:
    """``next`` must be a page of this app (no open redirect); a post from another origin is refused."""
    off = await pages.client.post("/app/login", data={"token": pages.token(), "next": "https://evil.example/"})
    assert off.headers["location"] == "/app/"
    slashes = await pages.client.post("/app/login", data={"token": pages.token(), "next": "//evil.example/app/"})
    assert slashes.headers["location"] == "/app/"
    cross = await pages.client.post(
        "/app/login", data={"token": pages.token(), "next": "/app/"}, headers={"origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    assert "set-cookie" not in cross.headers


async def test_home_lists_pages_unknown_pages_are_404_and_writes_405(pages: Pages) -> None:
    """The start page links every page in the navigation; other addresses and methods are refused cleanly."""
    auth = {"authorization": f"Bearer {pages.token()}"}
    home = await pages.client.get("/app/", headers=auth)
    assert home.status_code == 200
    assert 'href="/app/hello"' in home.text
    assert "a test page" in home.text
    assert (await pages.client.get("/app/nowhere", headers=auth)).status_code == 404
    assert (await pages.client.post("/app/hello", headers=auth)).status_code == 405
    css = await pages.client.get("/app/static/app.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "--nhs-blue:#005eb8" in css.text


async def test_the_fhir_endpoint_still_answers_beside_the_pages(pages: Pages) -> None:
    """Mounting /app leaves /fhir routed to the FHIR app."""
    metadata = await pages.client.get("/fhir/metadata")
    assert metadata.status_code == 200
    assert metadata.json()["resourceType"] == "CapabilityStatement"
