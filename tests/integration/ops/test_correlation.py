"""Correlation ids: each request's id is echoed, on every log line of the request, and in its AuditEvent;
each sync run's id is on its log lines."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from bcconnect.config import FetchSettings
from bcconnect.ingest import sync_adapter
from bcconnect.logging import configure_logging
from bcconnect.mapping import load_mapping_set
from bcconnect.security import search_audit_events
from bcconnect.store import ResourceWrite, open_store, put_resources
from bcconnect_sandbox import SandboxSettings, running_sandboxes
from support.sandbox_world import world_adapters

from .conftest import no_auth_settings, serving

pytestmark = pytest.mark.anyio

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Structured logs as JSON lines into a buffer for the test (console logging again afterwards)."""
    buffer = io.StringIO()
    configure_logging(level="info", fmt="json", stream=buffer)
    yield buffer
    configure_logging()


def _events(buffer: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def _request_ids_in_audit(bodies: list[bytes]) -> list[str]:
    found = []
    for body in bodies:
        for entity in orjson.loads(body).get("entity", []):
            if entity.get("type", {}).get("system") == BALP_ENTITY_TYPE and entity["type"]["code"] == "XrequestId":
                found.append(entity["what"]["identifier"]["value"])
    return found


async def test_a_request_id_is_echoed_logged_and_audited(
    tmp_path: Path, store_url: str, log_lines: io.StringIO
) -> None:
    """The caller's X-Request-ID comes back, is on the request's log line and in its AuditEvent; without one
    (or with an unsafe one) the server makes one, the same way."""
    patient = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Ann"}]}
    async with open_store(store_url) as store:
        await store.write(
            lambda tx: put_resources(tx, [ResourceWrite("Patient", "p1", orjson.dumps(patient), "t", "p1")])
        )
        async with serving(no_auth_settings(tmp_path), store) as client:
            given = await client.get("/fhir/Patient/p1", headers={"X-Request-ID": "trace-abc.123"})
            made = await client.get("/fhir/Patient/p1")
            unsafe = await client.get("/fhir/Patient/p1", headers={"X-Request-ID": "bad id with spaces"})
        audit = await store.read(lambda tx: search_audit_events(tx, patient="Patient/p1", count=10))
    assert given.status_code == 200
    assert given.headers["x-request-id"] == "trace-abc.123"
    generated = made.headers["x-request-id"]
    assert len(generated) == 32
    replaced = unsafe.headers["x-request-id"]
    assert replaced != "bad id with spaces"
    assert len({generated, replaced, "trace-abc.123"}) == 3
    assert sorted(_request_ids_in_audit(audit)) == sorted(["trace-abc.123", generated, replaced])
    request_lines = [e for e in _events(log_lines) if e.get("event") == "fhir_request"]
    assert sorted(str(e.get("request_id")) for e in request_lines) == sorted(["trace-abc.123", generated, replaced])


async def test_every_log_line_of_a_sync_run_carries_its_run_id(tmp_path: Path, log_lines: io.StringIO) -> None:
    """A sync's log lines (from the adapter, the pipeline and the summary) all name the same run id."""
    async with (
        running_sandboxes(SandboxSettings(density=0, persons=20, seed=2, trusts=("RL4",))) as world,
        open_store(f"sqlite:///{tmp_path / 's.db'}") as store,
    ):
        configs, environ = world_adapters(world, hl7_drop_dir=tmp_path / "drop")
        rl4 = replace(configs[0], fetch=FetchSettings(page_size=20))
        mapping = load_mapping_set(MAPPINGS / rl4.mapping_set)
        first = await sync_adapter(rl4, store=store, mapping_set=mapping, environ=environ)
        second = await sync_adapter(rl4, store=store, mapping_set=mapping, environ=environ)
    assert first.ok
    assert second.ok
    finished = [e for e in _events(log_lines) if e.get("event") == "sync_finished"]
    assert len(finished) == 2
    run_ids = [e.get("run_id") for e in finished]
    assert all(isinstance(r, str) and r for r in run_ids)
    assert run_ids[0] != run_ids[1]
    assert all(e.get("adapter") == "rl4" for e in finished)
    # every line written during the runs (the adapter's token fetch, the pipeline's summary) names one of them
    lines = _events(log_lines)
    assert len(lines) > len(finished)
    assert {e.get("run_id") for e in lines} == set(run_ids)
