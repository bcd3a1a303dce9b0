"""A four-trust world synced into a real store once for the cohort tests, with its cohort truth file."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from bcconnect.cohorts import Cohorts
from bcconnect.config import ApiSettings, AuthSettings, Settings, StoreSettings
from bcconnect.security import LocalIssuer, ensure_local_issuer
from bcconnect.store import Store, open_store
from bcconnect.view import View
from bcconnect_sandbox import SandboxSettings
from support.loopback import free_port, serving_bcconnect
from support.postgres_schema import postgres_schema_url
from support.sandbox_world import NO_IDENTITY_NOISE, synced_world

#: density 0: the sparse world (conditions, stays, attendances are all there; vitals and lab series are not,
#: and they would only make the sync slower)
WORLD = SandboxSettings(persons=500, seed=16, noise=NO_IDENTITY_NOISE, density=0)


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


@asynccontextmanager
async def _synced(store_url: str, tmp: Path) -> AsyncIterator[CohortWorld]:
    """The world synced into the store at ``store_url`` through the real adapters and mappings (all four dialects)."""
    async with open_store(store_url) as store:
        async with synced_world(WORLD, store, tmp) as world:
            world.write_cohort_truth(tmp / "cohort_truth.csv")
        with (tmp / "cohort_truth.csv").open(encoding="utf-8") as f:
            truth = {row["nhs_number"]: row for row in csv.DictReader(f)}
        yield CohortWorld(store, View(store), store_url, tmp, truth, WORLD.now)


@pytest.fixture(scope="package")
async def cohort_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CohortWorld]:
    """The world synced into SQLite."""
    tmp = tmp_path_factory.mktemp("cohort-world")
    async with _synced(f"sqlite:///{tmp / 'store.db'}", tmp) as world:
        yield world


@pytest.fixture(scope="package")
async def cohort_world_pg(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CohortWorld]:
    """The same world synced into a fresh PostgreSQL schema (skipped without a test server)."""
    with contextmanager(postgres_schema_url)() as url:
        async with _synced(url, tmp_path_factory.mktemp("pg")) as w:
            yield w


@dataclass
class Served:
    """``bcconnect serve`` (security, audit, pages) over the cohort world on a free loopback port."""

    base: str
    issuer: LocalIssuer
    world: CohortWorld

    def token(self, scopes: str = "user/*.rs", *, patient: str | None = None) -> str:
        return self.issuer.issue(scopes=scopes, user="555123456789", org="RL4", role="R8000", patient=patient)

    def headers(self, scopes: str = "user/*.rs", *, patient: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(scopes, patient=patient)}"}


@pytest.fixture(scope="package")
async def served(cohort_world: CohortWorld) -> AsyncIterator[Served]:
    """The endpoint and pages over the cohort world, with the three default cohorts computed."""
    await Cohorts(cohort_world.view).compute(as_of=cohort_world.now)
    issuer = ensure_local_issuer(cohort_world.data_dir / "keys")
    port = free_port()
    settings = Settings(
        store=StoreSettings(url=cohort_world.store_url),
        api=ApiSettings(host="127.0.0.1", port=port, default_count=20, max_count=200),
        auth=AuthSettings(issuers=(issuer.as_jwt_issuer(),)),
        root=cohort_world.data_dir,
    )
    async with serving_bcconnect(settings, cohort_world.store) as base:
        yield Served(base, issuer, cohort_world)
