"""``/metrics`` scraped from a served endpoint while a real sync runs and clients query: the series move.

The RL4 FHIR sandbox runs on loopback; once the first page is committed the sync's HTTP transport holds every
further request to the source until the test has scraped, so "during the sync" is a fact of the test, not a race.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anyio
import httpx
import pytest

from bcconnect.config import FetchSettings, MetricsSettings
from bcconnect.ingest import SyncReport, sync_adapter
from bcconnect.mapping import load_mapping_set
from bcconnect.store import Store, open_store
from bcconnect_sandbox import SandboxSettings, running_sandboxes
from support.sandbox_world import world_adapters

from .conftest import no_auth_settings, scrape, serving, value

pytestmark = pytest.mark.anyio

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"


class HoldingTransport(httpx.AsyncBaseTransport):
    """The network, except that once ``armed`` every FHIR request waits for ``release``."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.armed = False
        self.release = anyio.Event()
        self.holding = anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.armed and "/fhir/" in request.url.path:
            self.holding.set()
            await self.release.wait()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_metrics_move_during_a_sync_and_a_query_load(tmp_path: Path, store_url: str) -> None:
    """Ingest counters move mid-sync, request counters and latency move under load, store facts after."""
    async with (
        running_sandboxes(SandboxSettings(density=0, persons=40, seed=7, trusts=("RL4",))) as world,
        open_store(store_url) as store,
    ):
        configs, environ = world_adapters(world, hl7_drop_dir=tmp_path / "drop")
        rl4 = replace(configs[0], fetch=FetchSettings(page_size=10, backoff_base_seconds=0.01))
        settings = replace(no_auth_settings(tmp_path), metrics=MetricsSettings())
        async with serving(settings, store) as client:
            before = await scrape(client)
            transport = HoldingTransport()
            pages_seen = anyio.Event()
            result: list[SyncReport] = []

            def progress(adapter: str, report: SyncReport) -> None:
                transport.armed = True  # the first page is committed: hold the source from here on
                pages_seen.set()

            async def run_sync() -> None:
                mapping = load_mapping_set(MAPPINGS / rl4.mapping_set)
                result.append(
                    await sync_adapter(
                        rl4, store=store, mapping_set=mapping, environ=environ, transport=transport, progress=progress
                    )
                )

            async with anyio.create_task_group() as group:
                group.start_soon(run_sync)
                with anyio.fail_after(30):
                    await pages_seen.wait()
                    await transport.holding.wait()
                during = await scrape(client)
                assert not result, "the sync finished before the mid-sync scrape"
                # query load while the sync is held
                for i in range(12):
                    assert (await client.get("/fhir/Patient", params={"_count": "5"})).status_code == 200
                    assert (await client.get(f"/fhir/Patient/missing-{i}")).status_code == 404
                under_load = await scrape(client)
                transport.release.set()
            after = await scrape(client)

    report = result[0]
    assert report.ok, report.error
    # ingest: pages and records counted as they commit, before the run ends
    assert value(during, "bcconnect_ingest_pages_total", adapter="rl4") > value(
        before, "bcconnect_ingest_pages_total", adapter="rl4"
    )
    assert value(during, "bcconnect_ingest_records_total", adapter="rl4") > value(
        before, "bcconnect_ingest_records_total", adapter="rl4"
    )
    assert (
        value(after, "bcconnect_ingest_records_total", adapter="rl4")
        - value(before, "bcconnect_ingest_records_total", adapter="rl4")
        == report.fetched
    )
    # requests: counts and latency by interaction and status
    searched = value(under_load, "bcconnect_http_requests_total", interaction="search-type", status="200") - value(
        during, "bcconnect_http_requests_total", interaction="search-type", status="200"
    )
    assert searched == 12
    missing = value(under_load, "bcconnect_http_requests_total", interaction="read", status="404") - value(
        during, "bcconnect_http_requests_total", interaction="read", status="404"
    )
    assert missing == 12
    assert (
        value(under_load, "bcconnect_http_request_duration_seconds_count", interaction="search-type")
        - value(during, "bcconnect_http_request_duration_seconds_count", interaction="search-type")
        == 12
    )
    # store facts: the finished run, its records by outcome, freshness, the audit chain, the store itself
    assert value(after, "bcconnect_adapter_sync_runs_total", adapter="rl4", result="ok") == 1
    assert value(after, "bcconnect_adapter_records_total", adapter="rl4", outcome="new") == report.new
    assert value(after, "bcconnect_adapter_records_total", adapter="rl4", outcome="quarantined") == report.quarantined
    assert ("bcconnect_adapter_quarantine_depth", (("adapter", "rl4"),)) in after
    assert 0 <= value(after, "bcconnect_adapter_freshness_seconds", adapter="rl4") < 60
    assert value(after, "bcconnect_adapter_stale", adapter="rl4") == 0
    assert (
        value(after, "bcconnect_audit_chain_head_sequence") >= value(before, "bcconnect_audit_chain_head_sequence") + 24
    )
    # the server's own audit segment holds those events; nothing went to a default partition
    assert value(after, "bcconnect_audit_segments", state="open") >= 1
    assert value(after, "bcconnect_audit_default_partition_events") == 0
    assert value(after, "bcconnect_identity_links") > 0
    assert value(after, "bcconnect_store_size_bytes") > value(before, "bcconnect_store_size_bytes")
    assert value(after, "bcconnect_store_up") == 1
    assert value(after, "bcconnect_store_connections_max", kind="read") >= 1
    assert value(after, "bcconnect_rate_limit_requests_per_second", limit="client") == 1000


async def test_metrics_are_refused_to_clients_outside_the_allowed_networks(tmp_path: Path, store_url: str) -> None:
    """Scrapes are unauthenticated, so only the configured networks get them; the guard can say no."""
    settings = replace(no_auth_settings(tmp_path), metrics=MetricsSettings(allow_networks=("10.0.0.0/8",)))
    async with open_store(store_url) as store, serving(settings, store) as client:
        refused = await client.get("/metrics")
        assert refused.status_code == 403
        assert "bcconnect_" not in refused.text
        # the probes stay open: they show no data
        assert (await client.get("/healthz")).status_code == 200


async def test_metrics_on_a_port_of_their_own(tmp_path: Path, store_url: str) -> None:
    """``[metrics] port`` moves the scrape to its own listener; the API port no longer serves it."""
    from .conftest import free_port

    metrics_port = free_port()
    settings = replace(no_auth_settings(tmp_path), metrics=MetricsSettings(port=metrics_port))
    store: Store
    async with open_store(store_url) as store, serving(settings, store) as client:
        assert (await client.get("/metrics")).status_code == 404
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics_port}") as side:
            for _ in range(50):
                try:
                    response = await side.get("/metrics")
                    break
                except httpx.ConnectError:
                    await anyio.sleep(0.05)
            assert response.status_code == 200
            assert "bcconnect_store_up 1.0" in response.text
            assert (await side.get("/fhir/metadata")).status_code == 404
