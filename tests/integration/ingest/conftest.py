"""Fixtures for ingest tests: real sandboxes on loopback, real stores, the project's mapping sets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from bcconnect.config import AdapterConfig, FetchSettings
from bcconnect.mapping import MappingSet, load_mapping_set
from bcconnect.store import Store, open_store
from support.sandbox_world import world_adapters

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"


def mapping_set_for(config: AdapterConfig) -> MappingSet:
    """The project's mapping set an adapter names."""
    return load_mapping_set(MAPPINGS / config.mapping_set)


def with_fetch(config: AdapterConfig, **changes: object) -> AdapterConfig:
    """``config`` with some fetch settings changed (smaller pages, shorter backoff in tests)."""
    return replace(config, fetch=replace(config.fetch, **changes))  # type: ignore[arg-type]


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh embedded store."""
    async with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        yield store


@pytest.fixture
async def any_store(store_url: str) -> AsyncIterator[Store]:
    """A fresh store on each backend: SQLite, then PostgreSQL."""
    async with open_store(store_url) as store:
        yield store


def adapters_for(world: object, tmp_path: Path) -> tuple[dict[str, AdapterConfig], dict[str, str]]:
    """The demo's adapter configurations for a running world, by trust, with the secrets they name."""
    configs, environ = world_adapters(world, hl7_drop_dir=tmp_path / "drop")  # type: ignore[arg-type]
    fast = {
        c.ods_code: replace(
            c, fetch=FetchSettings(page_size=50, backoff_base_seconds=0.01, backoff_max_seconds=0.2, max_retries=10)
        )
        for c in configs
    }
    return fast, environ


async def source_ids(base_url: str, credentials: object, resource_type: str) -> set[str]:
    """Every id the FHIR sandbox currently serves for ``resource_type`` (paged, with a fresh token)."""
    async with httpx.AsyncClient(timeout=10) as client:
        token = await client.post(
            f"{base_url}/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": credentials.client_id,  # type: ignore[attr-defined]
                "client_secret": credentials.client_secret,  # type: ignore[attr-defined]
            },
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        ids: set[str] = set()
        url: str | None = f"{base_url}/fhir/R4/{resource_type}?_count=500"
        while url:
            page = (await client.get(url, headers=headers)).json()
            ids |= {e["resource"]["id"] for e in page.get("entry", [])}
            url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
        return ids
