"""The security seams (authenticate, on_request_complete) and robustness against arbitrary client input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bcconnect.api import AccessContext, Request, create_app
from bcconnect.config import Settings
from bcconnect.errors import NotAuthenticated
from bcconnect.view import View

pytestmark = pytest.mark.anyio


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: these tests are about the HTTP layer."""
    return f"sqlite:///{tmp_path / 'store.db'}"


async def test_authenticate_result_reaches_the_hook_with_the_patients_touched(view: View) -> None:
    """The context from authenticate() is what the completion hook sees, with status and patient ids."""
    seen: list[tuple[str, AccessContext | None, int, frozenset[str]]] = []
    clinician = AccessContext(user="912345678901", role="R8000", organisation="RL4", purpose="directcare")

    async def authenticate(request: Request) -> AccessContext:
        if request.header("authorization") != "Bearer good":
            raise NotAuthenticated("a bearer token is required")
        return clinician

    async def complete(request: Request, access: AccessContext | None, status: int, patients: frozenset[str]) -> None:
        seen.append((request.path, access, status, patients))

    app = create_app(Settings(), view, authenticate=authenticate, on_request_complete=complete)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver/fhir") as client:
        refused = await client.get("/Patient/p1")
        ok = await client.get("/Observation?subject=p1&_count=3", headers={"authorization": "Bearer good"})
    assert refused.status_code == 401
    assert refused.json()["issue"][0]["code"] == "login"
    assert ok.status_code == 200
    assert seen[0] == ("/Patient/p1", None, 401, frozenset())
    assert seen[1] == ("/Observation", clinician, 200, frozenset({"p1"}))


async def test_a_failing_completion_hook_fails_the_request(view: View) -> None:
    """An audit trail that cannot be written must not let the data out."""

    async def complete(request: Request, access: AccessContext | None, status: int, patients: frozenset[str]) -> None:
        raise RuntimeError("audit store down")

    app = create_app(Settings(), view, on_request_complete=complete)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver/fhir") as client:
        response = await client.get("/Patient/p1")
    assert response.status_code == 500
    assert b"audit store down" not in response.content
    assert b"Smith" not in response.content


@pytest.fixture
async def fuzz_client(view: View) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(), view)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver/fhir") as client:
        yield client


NAMES = st.sampled_from(
    ["_id", "identifier", "family", "birthdate", "subject", "subject:Patient.identifier", "code", "code:text",
     "value-quantity", "date", "_sort", "_count", "_include", "_revinclude", "_summary", "_elements", "_total",
     "_page_token", "_lastUpdated", "gender:not", "name:exact", "patient.family", "_tag:missing", "x"]
)  # fmt: skip
VALUES = st.text(alphabet=st.characters(codec="utf-8"), max_size=24) | st.sampled_from(
    ["ge2020", "lt2020-13-01", "a|b|c", "\\", "\\,", ",", "|", "-", "0", "99999999999999999999", "Patient:subject"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(
        ["/Patient", "/Observation", "/Patient/p1", "/Patient/p1/$everything", "/Patient/p1/_history"]
    ),
    params=st.lists(st.tuples(NAMES, VALUES), max_size=4),
)
async def test_no_client_input_gives_a_500(
    fuzz_client: httpx.AsyncClient, path: str, params: list[tuple[str, str]]
) -> None:
    """Whatever the query, the answer is a success or a 4xx OperationOutcome."""
    query = "&".join(f"{quote(k, safe=':.')}={quote(v, safe='')}" for k, v in params)
    response = await fuzz_client.get(f"{path}?{query}")
    assert response.status_code < 500, (path, params, response.text)
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"
