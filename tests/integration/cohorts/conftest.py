"""A four-trust world synced into a real store once for the cohort tests, with its cohort truth file."""

from __future__ import annotations

import csv
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import anyio
import pytest

from bcconnect.cli.serve_cmd import serve_api
from bcconnect.cohorts import Cohorts
from bcconnect.config import ApiSettings, AuthSettings, PathSettings, Settings, StoreSettings
from bcconnect.ingest import sync_adapters
from bcconnect.security import LocalIssuer, ensure_local_issuer
from bcconnect.store import Store, open_store
from bcconnect.view import View
from bcconnect_sandbox import NoiseSettings, SandboxSettings, running_sandboxes
from support.sandbox_world import world_adapters

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"
#: identity noise off: these tests check cohorts, not linkage (the patient index has its own tests)
NO_NOISE = NoiseSettings(
    nhs_missing=0.0, nhs_unverified=0.0, typo=0.0, nickname=0.0, dob_swapped=0.0, moved_house=0.0, duplicate=0.0
)
#: density 0: the sparse world (conditions, stays, attendances are all there; vitals and lab series are not,
#: and they would only make the sync slower)
WORLD = SandboxSettings(persons=500, seed=16, noise=NO_NOISE, density=0)


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
async def synced(store_url: str, tmp: Path, settings: SandboxSettings = WORLD) -> AsyncIterator[CohortWorld]:
    """A world synced into the store at ``store_url`` through the real adapters and mappings (all four dialects)."""
    async with open_store(store_url) as store:
        async with running_sandboxes(settings, hl7_drop_dir=tmp / "drop") as world:
            await world.deliver_hl7()
            configs, environ = world_adapters(world, hl7_drop_dir=tmp / "drop")
            engine = Settings(root=tmp, paths=PathSettings(mappings_dir=str(MAPPINGS)))
            reports = await sync_adapters(configs, settings=engine, store=store, environ=environ)
            assert all(r.ok and r.quarantined == 0 for r in reports), [r.as_dict() for r in reports]
            world.write_cohort_truth(tmp / "cohort_truth.csv")
        with (tmp / "cohort_truth.csv").open(encoding="utf-8") as f:
            truth = {row["nhs_number"]: row for row in csv.DictReader(f)}
        yield CohortWorld(store, View(store), store_url, tmp, truth, settings.now)


@pytest.fixture(scope="package")
async def cohort_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CohortWorld]:
    """The world synced into SQLite."""
    tmp = tmp_path_factory.mktemp("cohort-world")
    async with synced(f"sqlite:///{tmp / 'store.db'}", tmp) as world:
        yield world


@asynccontextmanager
async def postgres_world(tmp: Path, settings: SandboxSettings = WORLD) -> AsyncIterator[CohortWorld]:
    """A world synced into a fresh PostgreSQL schema, dropped afterwards (skipped without a test server)."""
    base = os.environ.get("BCCONNECT_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("BCCONNECT_TEST_POSTGRES_URL is not set: CI must test PostgreSQL")
        pytest.skip("BCCONNECT_TEST_POSTGRES_URL is not set (scripts/test-postgres start prints one)")
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    try:
        async with synced(f"{base}{sep}options={quote(f'-csearch_path={schema}')}", tmp, settings) as w:
            yield w
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="package")
async def cohort_world_pg(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CohortWorld]:
    """The same world synced into a fresh PostgreSQL schema (skipped without a test server)."""
    async with postgres_world(tmp_path_factory.mktemp("pg")) as w:
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="package")
async def served(cohort_world: CohortWorld) -> AsyncIterator[Served]:
    """The endpoint and pages over the cohort world, with the three default cohorts computed."""
    await Cohorts(cohort_world.view).compute(as_of=cohort_world.now)
    issuer = ensure_local_issuer(cohort_world.data_dir / "keys")
    port = _free_port()
    settings = Settings(
        store=StoreSettings(url=cohort_world.store_url),
        api=ApiSettings(host="127.0.0.1", port=port, default_count=20, max_count=200),
        auth=AuthSettings(issuers=(issuer.as_jwt_issuer(),)),
        root=cohort_world.data_dir,
    )
    ready = anyio.Event()

    async def on_ready() -> None:
        ready.set()

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: serve_api(settings, store=cohort_world.store, on_ready=on_ready))
        with anyio.fail_after(30):
            await ready.wait()
        yield Served(f"http://127.0.0.1:{port}", issuer, cohort_world)
        group.cancel_scope.cancel()
