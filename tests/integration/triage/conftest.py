"""A synced world for the triage tests: four sandboxes (no identity noise) loaded into a real store once."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bcconnect.config import PathSettings, Settings
from bcconnect.ingest import sync_adapters
from bcconnect.store import Store, open_store
from bcconnect.view import View
from bcconnect_sandbox import NoiseSettings, SandboxSettings, running_sandboxes
from support.sandbox_world import world_adapters

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"
#: identity noise off, so these tests check triage, not linkage (the patient index has its own tests)
NO_NOISE = NoiseSettings(
    nhs_missing=0.0, nhs_unverified=0.0, typo=0.0, nickname=0.0, dob_swapped=0.0, moved_house=0.0, duplicate=0.0
)
WORLD = SandboxSettings(persons=400, seed=15, noise=NO_NOISE)


@dataclass
class SyncedWorld:
    """The store, a view over it, the truth files and the reference date the truth counts at."""

    store: Store
    view: View
    rtt: list[dict[str, str]]
    referrals: list[dict[str, str]]
    as_of: date


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def synced(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SyncedWorld]:
    """The world synced into SQLite through the real adapters and mappings (once per module)."""
    tmp = tmp_path_factory.mktemp("triage-world")
    async with open_store(f"sqlite:///{tmp / 'store.db'}") as store:
        async with running_sandboxes(WORLD, hl7_drop_dir=tmp / "drop") as world:
            await world.deliver_hl7()
            configs, environ = world_adapters(world, hl7_drop_dir=tmp / "drop")
            settings = Settings(root=tmp, paths=PathSettings(mappings_dir=str(MAPPINGS)))
            reports = await sync_adapters(configs, settings=settings, store=store, environ=environ)
            assert all(r.ok and r.quarantined == 0 for r in reports), [r.as_dict() for r in reports]
            world.write_referral_truth(tmp)
        view = View(store, default_count=100, max_count=1000)
        yield SyncedWorld(
            store, view, _read(tmp / "rtt_truth.csv"), _read(tmp / "referral_truth.csv"), WORLD.now.date()
        )
