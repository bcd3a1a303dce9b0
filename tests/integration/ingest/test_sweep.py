"""The reconciliation sweep: deletes the source never reported still reach the store, and nothing else does."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcconnect.fhir.constants import source_system
from bcconnect.fhir.ids import resource_id
from bcconnect.ingest import sweep_deletes, sync_adapter
from bcconnect.store import Store, iter_current
from bcconnect_sandbox import SandboxSettings, running_sandboxes

from .conftest import adapters_for, mapping_set_for, source_ids

pytestmark = pytest.mark.anyio


async def _stored(store: Store, resource_type: str) -> set[str]:
    """Ids of what the adapter wrote (a person's golden Patient is identity's, not a source record)."""
    return {r.id for r in await store.read(lambda tx: iter_current(tx, resource_type, limit=100_000, source="rl4"))}


async def test_the_sweep_tombstones_exactly_what_the_source_no_longer_has(tmp_path: Path, any_store: Store) -> None:
    """Right after a sync the sweep deletes nothing; after the source deletes records (and we do not sync),
    the sweep alone brings the store back to mirroring the source."""
    async with running_sandboxes(SandboxSettings(density=0, persons=80, seed=9, trusts=("RL4",))) as world:
        configs, environ = adapters_for(world, tmp_path)
        rl4 = configs["RL4"]
        mapping = mapping_set_for(rl4)
        await sync_adapter(rl4, store=any_store, mapping_set=mapping, environ=environ)
        idle = await sweep_deletes(rl4, store=any_store, mapping_set=mapping, environ=environ)
        assert sum(idle.deleted.values()) == 0
        assert idle.listed["Patient"] > 0

        await world.advance(days=60)
        swept = await sweep_deletes(rl4, store=any_store, mapping_set=mapping, environ=environ)
        system = source_system("RL4")
        mirrored = 0
        for resource_type in ("Patient", "Encounter", "Observation", "Condition"):
            live = await source_ids(world.base_url("RL4"), world.credentials("RL4"), resource_type)
            expected = {resource_id(system, resource_type, f"{resource_type}/{i}") for i in live}
            stored = await _stored(any_store, resource_type)
            # nothing the source no longer has is left (what is new since the sync comes with the next sync)
            assert stored <= expected, resource_type
            mirrored += len(stored)
    assert sum(swept.deleted.values()) > 0
    assert mirrored > 0
