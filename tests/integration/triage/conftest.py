"""A synced world for the triage tests: four sandboxes (no identity noise) loaded into a real store once."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fhirpy import AsyncFHIRClient

from bcconnect.config import ApiSettings, AuthSettings, Settings, StoreSettings
from bcconnect.security import LocalIssuer, ensure_local_issuer
from bcconnect.store import Store, open_store
from bcconnect.view import View
from bcconnect_sandbox import SandboxSettings
from support.loopback import free_port, serving_bcconnect
from support.postgres_schema import postgres_schema_url
from support.sandbox_world import NO_IDENTITY_NOISE, synced_world

WORLD = SandboxSettings(density=0, persons=400, seed=15, noise=NO_IDENTITY_NOISE)


@dataclass
class SyncedWorld:
    """The store, a view over it, the truth files and the reference date the truth counts at."""

    store: Store
    view: View
    store_url: str
    data_dir: Path
    rtt: list[dict[str, str]]
    referrals: list[dict[str, str]]
    as_of: date


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="package")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="package", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def triage_store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty store for the package's world: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('triage-db') / 'store.db'}"
    else:
        yield from postgres_schema_url()


@pytest.fixture(scope="package")
async def synced(tmp_path_factory: pytest.TempPathFactory, triage_store_url: str) -> AsyncIterator[SyncedWorld]:
    """The world synced through the real adapters and mappings (once per backend for these tests)."""
    tmp = tmp_path_factory.mktemp("triage-world")
    store_url = triage_store_url
    async with open_store(store_url) as store:
        async with synced_world(WORLD, store, tmp) as world:
            world.write_referral_truth(tmp)
        view = View(store, default_count=100, max_count=1000)
        rtt, referrals = _read(tmp / "rtt_truth.csv"), _read(tmp / "referral_truth.csv")
        yield SyncedWorld(store, view, store_url, tmp, rtt, referrals, WORLD.now.date())


@dataclass
class Served:
    base: str
    issuer: LocalIssuer
    world: SyncedWorld

    def token(self, scopes: str = "user/*.rs") -> str:
        return self.issuer.issue(scopes=scopes, user="555123456789", org="RL4", role="R8000")

    def client(self, scopes: str = "user/*.rs") -> AsyncFHIRClient:
        return AsyncFHIRClient(f"{self.base}/fhir", authorization=f"Bearer {self.token(scopes)}")


@pytest.fixture(scope="package")
async def served(synced: SyncedWorld) -> AsyncIterator[Served]:
    """`bcconnect serve` (security, audit, pages) over the synced store on a free loopback port."""
    issuer = ensure_local_issuer(synced.data_dir / "keys")
    port = free_port()
    settings = Settings(
        store=StoreSettings(url=synced.store_url),
        api=ApiSettings(host="127.0.0.1", port=port, default_count=20, max_count=200),
        auth=AuthSettings(issuers=(issuer.as_jwt_issuer(),)),
        root=synced.data_dir,
    )
    async with serving_bcconnect(settings, synced.store) as base:
        yield Served(base, issuer, synced)
