"""A four-trust world synced into a real store once for the cohort tests, with its cohort truth file."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from bcconnect.config import PathSettings, Settings
from bcconnect.ingest import sync_adapters
from bcconnect.store import Store, open_store
from bcconnect.view import View
from bcconnect_sandbox import NoiseSettings, SandboxSettings, running_sandboxes
from support.sandbox_world import world_adapters

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"
#: identity noise off: these tests check cohorts, not linkage (the patient index has its own tests)
NO_NOISE = NoiseSettings(
    nhs_missing=0.0, nhs_unverified=0.0, typo=0.0, nickname=0.0, dob_swapped=0.0, moved_house=0.0, duplicate=0.0
)
WORLD = SandboxSettings(persons=500, seed=16, noise=NO_NOISE)


@dataclass
class CohortWorld:
    """The store, a view over it, the truth rows (by NHS number) and the world's "now"."""

    store: Store
    view: View
    store_url: str
    data_dir: Path
    truth: dict[str, dict[str, str]]
    now: datetime


@pytest.fixture(scope="package")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="package")
async def cohort_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CohortWorld]:
    """The world synced into SQLite through the real adapters and mappings, all four wire dialects."""
    tmp = tmp_path_factory.mktemp("cohort-world")
    store_url = f"sqlite:///{tmp / 'store.db'}"
    async with open_store(store_url) as store:
        async with running_sandboxes(WORLD, hl7_drop_dir=tmp / "drop") as world:
            await world.deliver_hl7()
            configs, environ = world_adapters(world, hl7_drop_dir=tmp / "drop")
            settings = Settings(root=tmp, paths=PathSettings(mappings_dir=str(MAPPINGS)))
            reports = await sync_adapters(configs, settings=settings, store=store, environ=environ)
            assert all(r.ok and r.quarantined == 0 for r in reports), [r.as_dict() for r in reports]
            world.write_cohort_truth(tmp / "cohort_truth.csv")
        with (tmp / "cohort_truth.csv").open(encoding="utf-8") as f:
            truth = {row["nhs_number"]: row for row in csv.DictReader(f)}
        yield CohortWorld(store, View(store), store_url, tmp, truth, WORLD.now)
