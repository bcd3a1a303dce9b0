"""A synced world for the triage tests: four sandboxes (no identity noise) loaded into a real store once."""

from __future__ import annotations

import csv
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import pytest
from fhirpy import AsyncFHIRClient

from bcconnect.cli.serve_cmd import serve_api
from bcconnect.config import ApiSettings, AuthSettings, PathSettings, Settings, StoreSettings
from bcconnect.ingest import sync_adapters
from bcconnect.security import LocalIssuer, ensure_local_issuer
from bcconnect.store import Store, open_store
from bcconnect.view import View
from bcconnect_sandbox import NoiseSettings, SandboxSettings, running_sandboxes
from support.postgres_schema import postgres_schema_url
from support.sandbox_world import world_adapters

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"
#: identity noise off, so these tests check triage, not linkage (the patient index has its own tests)
NO_NOISE = NoiseSettings(
    nhs_missing=0.0, nhs_unverified=0.0, typo=0.0, nickname=0.0, dob_swapped=0.0, moved_house=0.0, duplicate=0.0
)
WORLD = SandboxSettings(density=0, persons=400, seed=15, noise=NO_NOISE)


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
        async with running_sandboxes(WORLD, hl7_drop_dir=tmp / "drop") as world:
            await world.deliver_hl7()
            configs, environ = world_adapters(world, hl7_drop_dir=tmp / "drop")
            settings = Settings(root=tmp, paths=PathSettings(mappings_dir=str(MAPPINGS)))
            reports = await sync_adapters(configs, settings=settings, store=store, environ=environ)
            assert all(r.ok and r.quarantined == 0 for r in reports), [r.as_dict() for r in reports]
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="package")
async def served(synced: SyncedWorld) -> AsyncIterator[Served]:
    """`bcconnect serve` (security, audit, pages) over the synced store on a free loopback port."""
    issuer = ensure_local_issuer(synced.data_dir / "keys")
    port = _free_port()
    settings = Settings(
        store=StoreSettings(url=synced.store_url),
        api=ApiSettings(host="127.0.0.1", port=port, default_count=20, max_count=200),
        auth=AuthSettings(issuers=(issuer.as_jwt_issuer(),)),
        root=synced.data_dir,
    )
    ready = anyio.Event()

    async def on_ready() -> None:
        ready.set()

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: serve_api(settings, store=synced.store, on_ready=on_ready))
        with anyio.fail_after(30):
            await ready.wait()
        yield Served(f"http://127.0.0.1:{port}", issuer, synced)
        group.cancel_scope.cancel()
