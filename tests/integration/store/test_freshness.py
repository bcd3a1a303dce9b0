"""The one definition of a source's freshness: committed pages and successful runs refresh it; age decides stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bcconnect.store import mark_synced, open_store, set_cursor, source_freshness

pytestmark = pytest.mark.anyio


async def test_a_page_and_a_successful_run_both_refresh_the_last_sync(store_url: str) -> None:
    async with open_store(store_url) as store:
        await store.write(lambda tx: set_cursor(tx, "rl4", '{"w": 1}'))
        first = await store.read(
            lambda tx: source_freshness(tx, ods_codes={"rl4": "RL4", "rbk": "RBK"}, limits={}, default_limit=3600)
        )
        by_source = {f.source: f for f in first}
        assert by_source["rl4"].last_sync is not None
        assert not by_source["rl4"].stale
        assert by_source["rbk"].stale  # configured but never synced
        assert by_source["rbk"].last_sync is None

        await store.write(lambda tx: mark_synced(tx, "rl4"))  # a run that found nothing new still counts
        await store.write(lambda tx: mark_synced(tx, "rbk"))  # no page ever: still never synced
        later = datetime.now(UTC) + timedelta(hours=2)
        second = await store.read(
            lambda tx: source_freshness(tx, ods_codes={"rl4": "RL4", "rbk": "RBK"}, limits={}, default_limit=3600)
        )
        rl4 = next(f for f in second if f.source == "rl4")
        assert rl4.last_sync is not None
        assert rl4.last_sync >= str(by_source["rl4"].last_sync)
        assert next(f for f in second if f.source == "rbk").last_sync is None
        aged = await store.read(
            lambda tx: source_freshness(tx, ods_codes={"rl4": "RL4"}, limits={"rl4": 3600}, default_limit=60, now=later)
        )
        assert [(f.source, f.stale) for f in aged] == [("rl4", True)]
