"""Syncing the RL4 FHIR sandbox over loopback into a real SQLite store: first load, re-sync, incremental rounds."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from bcconnect.fhir.constants import source_system
from bcconnect.fhir.ids import resource_id
from bcconnect.identity import GOLDEN_TAG
from bcconnect.ingest import sync_adapter
from bcconnect.store import Store, current_t, iter_current
from bcconnect_sandbox import SandboxSettings, running_sandboxes

from .conftest import adapters_for, mapping_set_for, source_ids

pytestmark = pytest.mark.anyio


async def _store_ids(store: Store, resource_type: str) -> set[str]:
    """Ids of the source resources of a type (a person's golden Patient, which identity writes, is not one)."""
    found = await store.read(lambda tx: iter_current(tx, resource_type, limit=100_000))
    return {r.id for r in found if r.body is not None and GOLDEN_TAG not in orjson.loads(r.body)["meta"].get("tag", [])}


async def test_first_sync_loads_every_record_and_balances(tmp_path: Path, any_store: Store) -> None:
    """Every record the source serves is fetched once, mapped, stored; the reconciliation balances."""
    async with running_sandboxes(SandboxSettings(density=0, persons=60, seed=3, trusts=("RL4",))) as world:
        configs, environ = adapters_for(world, tmp_path)
        rl4 = configs["RL4"]
        report = await sync_adapter(rl4, store=any_store, mapping_set=mapping_set_for(rl4), environ=environ)
        assert report.ok, report.error
        assert report.balanced
        assert report.fetched > 0
        assert report.new == report.fetched - report.quarantined
        patients = await source_ids(world.base_url("RL4"), world.credentials("RL4"), "Patient")
    system = source_system("RL4")
    expected = {resource_id(system, "Patient", f"Patient/{pid}") for pid in patients}
    assert await _store_ids(any_store, "Patient") == expected


async def test_a_resync_without_source_changes_writes_nothing(tmp_path: Path, any_store: Store) -> None:
    """Re-reading the overlap window finds every record unchanged: no new version, no new logical time."""
    async with running_sandboxes(SandboxSettings(density=0, persons=40, seed=4, trusts=("RL4",))) as world:
        configs, environ = adapters_for(world, tmp_path)
        rl4 = configs["RL4"]
        mapping = mapping_set_for(rl4)
        await sync_adapter(rl4, store=any_store, mapping_set=mapping, environ=environ)
        t_before = await any_store.read(current_t)
        again = await sync_adapter(rl4, store=any_store, mapping_set=mapping, environ=environ)
    assert again.ok
    assert again.balanced
    assert (again.new, again.changed, again.quarantined) == (0, 0, 0)
    assert again.unchanged == again.fetched
    assert await any_store.read(current_t) == t_before


async def test_incremental_rounds_fetch_only_changes_and_mirror_deletes(tmp_path: Path, any_store: Store) -> None:
    """After the sandbox moves time on, the next sync asks only for what is newer than its watermark, and the
    store then mirrors the source: new, corrected and deleted resources included."""
    async with running_sandboxes(SandboxSettings(density=0, persons=80, seed=5, trusts=("RL4",))) as world:
        configs, environ = adapters_for(world, tmp_path)
        rl4 = configs["RL4"]
        mapping = mapping_set_for(rl4)
        first = await sync_adapter(rl4, store=any_store, mapping_set=mapping, environ=environ)
        assert (await world.advance(days=30)).get("RL4", 0) > 0
        second = await sync_adapter(rl4, store=any_store, mapping_set=mapping, environ=environ)
        log_mark = len(world.request_log("RL4"))
        gained = (await world.advance(days=30)).get("RL4", 0)
        assert gained > 0
        third = await sync_adapter(rl4, store=any_store, mapping_set=mapping, environ=environ)
        requests = world.request_log("RL4")[log_mark:]
        for resource_type in ("Patient", "Encounter", "Observation"):
            live = await source_ids(world.base_url("RL4"), world.credentials("RL4"), resource_type)
            expected = {resource_id(source_system("RL4"), resource_type, f"{resource_type}/{i}") for i in live}
            assert await _store_ids(any_store, resource_type) == expected, resource_type
    assert first.ok
    assert second.ok
    assert third.ok
    assert second.balanced
    assert third.balanced
    assert third.new + third.changed + third.deleted > 0
    # Right after the bulk load every record sits inside the overlap window, so round two re-reads them;
    # round three shows the steady state.
    # every version the source gained is taken in as new or changed, and nothing else is
    assert third.new + third.changed == gained
    # the only re-reads are the overlap window: the previous round's changes, and the reference data
    # (Organization, Practitioner) whose watermark has not moved since the bulk load
    reference_data = len(await _store_ids(any_store, "Organization")) + len(await _store_ids(any_store, "Practitioner"))
    assert third.unchanged <= second.new + second.changed + reference_data
    assert third.fetched < first.fetched
    searches = [
        (path, query)
        for method, path, _ in requests
        if method == "GET" and "_history" not in path and "_elements" not in path
        for query in [parse_qs(urlsplit(path).query)]
        if "_count" in query
    ]
    assert searches, "the third sync made no searches"
    for path, query in searches:
        if "page" in query or "_getpages" in query or "_page" in query:
            continue  # a next link continues a search that already carried the watermark
        resource_type = urlsplit(path).path.rsplit("/", 1)[-1]
        if not await _store_ids(any_store, resource_type):
            continue  # a type that never had a record has no watermark yet: reading it all reads nothing
        assert query.get("_lastUpdated", [""])[0].startswith(("ge", "gt")), f"full read in round three: {path}"
