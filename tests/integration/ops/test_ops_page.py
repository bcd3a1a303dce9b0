"""``/app/ops`` in headless Chromium, served by ``bcconnect serve``'s own wiring over a store a real sync filled:
adapters with their freshness, quarantine by reason linking to the record, the review queue, failed syncs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anyio.to_thread
import pytest

from bcconnect.config import FetchSettings
from bcconnect.errors import ReasonCode
from bcconnect.ingest import sync_adapter
from bcconnect.mapping import load_mapping_set
from bcconnect.store import QuarantineEntry, add_quarantine, open_store
from bcconnect_sandbox import SandboxSettings, running_sandboxes
from support.chromium import CHROMIUM_ARGS, chromium_executable
from support.sandbox_world import world_adapters

from .conftest import free_port, no_auth_settings, serving

pytestmark = pytest.mark.anyio

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"
SECRET_PAYLOAD = "PAYLOAD-MUST-NOT-SHOW-9990000018"


def _browse(base: str) -> dict[str, str]:
    """Open /app/ops, follow the first quarantine link; return the texts the browser shows."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            response = page.goto(f"{base}/app/ops")
            assert response is not None
            seen = {"status": str(response.status), "ops": page.inner_text("body"), "title": page.title()}
            page.click("text=#1")
            page.wait_for_load_state()
            seen["record"] = page.inner_text("body")
            seen["record_url"] = page.url
            return seen
        finally:
            browser.close()


async def test_the_ops_page_shows_adapters_quarantine_reviews_and_failed_syncs(tmp_path: Path) -> None:
    """Everything on the page comes from the store a real sync wrote; the quarantine link opens the record
    without its payload."""
    chromium_executable()
    async with (
        running_sandboxes(SandboxSettings(density=0, persons=20, seed=4, trusts=("RL4",))) as world,
        open_store(f"sqlite:///{tmp_path / 'store.db'}") as store,
    ):
        configs, environ = world_adapters(world, hl7_drop_dir=tmp_path / "drop")
        rl4 = replace(configs[0], fetch=FetchSettings(page_size=50))
        mapping = load_mapping_set(MAPPINGS / rl4.mapping_set)
        assert (await sync_adapter(rl4, store=store, mapping_set=mapping, environ=environ)).ok
        # a second trust whose system is down: its run fails, and the page must say so
        down = replace(rl4, name="rxk", ods_code="RXK", base_url=f"http://127.0.0.1:{free_port()}",
                       fetch=FetchSettings(max_retries=0, timeout_seconds=2))  # fmt: skip
        failed = await sync_adapter(down, store=store, mapping_set=mapping, environ=environ)
        assert not failed.ok
        entry = QuarantineEntry(
            adapter="rl4",
            source_key="Observation/broken-1",
            record_type="Observation",
            stage="validation",
            reason=ReasonCode.VALIDATION,
            message="Observation.status is required",
            payload=SECRET_PAYLOAD.encode(),
            details=("Observation.status: missing",),
        )
        quarantine_id = await store.write(lambda tx: add_quarantine(tx, entry))
        assert quarantine_id == 1
        settings = no_auth_settings(tmp_path)
        async with serving(settings, store) as client:
            base = str(client.base_url).rstrip("/")
            seen = await anyio.to_thread.run_sync(_browse, base)
    assert seen["status"] == "200"
    assert "Operations" in seen["title"]
    ops = seen["ops"]
    for expected in ("Adapters", "rl4", "rxk", "fresh", "never synced", "Open quarantine by reason",
                     "validation", "Observation.status is required", "Identity review queue",
                     "Recent failed or degraded syncs", "FAILED"):  # fmt: skip
        assert expected in ops, expected
    assert seen["record_url"].endswith("/app/ops/quarantine/1")
    record = seen["record"]
    assert "Observation/broken-1" in record
    assert "Observation.status: missing" in record
    assert SECRET_PAYLOAD not in record
    assert SECRET_PAYLOAD not in ops
