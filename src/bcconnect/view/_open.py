"""Opening a view over a store URL, for a front end that is handed no view (the store stays behind the view)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bcconnect.store import open_store
from bcconnect.view._view import View


@asynccontextmanager
async def open_view(store_url: str, *, default_count: int = 50, max_count: int = 1000) -> AsyncIterator[View]:
    """A :class:`View` over the store at ``store_url`` (migrated on open), closed on exit."""
    async with open_store(store_url) as store:
        yield View(store, default_count=default_count, max_count=max_count)
