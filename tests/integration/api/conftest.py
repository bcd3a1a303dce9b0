"""Fixtures of the API tests: a store on each backend holding a small record, a view, an in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from bcconnect.api import create_app
from bcconnect.config import Settings
from bcconnect.store import ResourceWrite, open_store, put_resources
from bcconnect.view import View

NHS = "https://fhir.nhs.uk/Id/nhs-number"
LOINC = "http://loinc.org"


def write(body: dict[str, Any], compartment: str | None = None) -> ResourceWrite:
    """A ResourceWrite for ``body``."""
    return ResourceWrite(body["resourceType"], body["id"], orjson.dumps(body), source="test", compartment=compartment)


def patient(pid: str, family: str, nhs: str, **extra: Any) -> ResourceWrite:
    """A Patient with an NHS number."""
    body = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": NHS, "value": nhs}],
        "name": [{"family": family, "given": ["Ann"]}],
        "gender": "female",
        "birthDate": "1970-01-01",
        "text": {"status": "generated", "div": "<div xmlns='http://www.w3.org/1999/xhtml'>Ann</div>"},
        "generalPractitioner": [{"reference": "Practitioner/dr1"}],
        **extra,
    }
    return write(body, pid)


def observation(oid: str, pid: str, day: int) -> ResourceWrite:
    """A glucose Observation on 2024-01-<day>."""
    body = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "2345-7", "display": "Glucose"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": f"2024-01-{day:02d}T10:00:00Z",
        "valueQuantity": {"value": 5 + day / 10, "unit": "mmol/L"},
    }
    return write(body, pid)


def record() -> list[ResourceWrite]:
    """The whole test record."""
    return [
        write({"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Jones"}]}),
        patient("p1", "Smith", "9000000009"),
        patient("p2", "Brown", "9000000017"),
        *[observation(f"o{i}", "p1", i) for i in range(1, 13)],
        observation("x1", "p2", 5),
        write({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}}, "p1"),
    ]


@pytest.fixture
async def view(store_url: str) -> AsyncIterator[View]:
    """A view over a store holding the test record."""
    async with open_store(store_url) as store:
        await store.write(lambda tx: put_resources(tx, record()))
        yield View(store, default_count=5, max_count=10)


@pytest.fixture
async def client(view: View) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the app in-process (no lifespan: the view is passed in)."""
    app = create_app(Settings(), view)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver/fhir") as c:
        yield c


@pytest.fixture
def test_record() -> list[ResourceWrite]:
    """The test record as writes (for tests that seed a store themselves)."""
    return record()
