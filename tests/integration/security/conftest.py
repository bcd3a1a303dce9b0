"""Every security store test runs on SQLite and on PostgreSQL (a fresh schema each)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bcconnect.store import Store, open_store


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open, migrated store."""
    async with open_store(store_url) as opened:
        yield opened
