"""The FHIR endpoint for the HTTP benchmark: ``python bench/api_server.py --url STORE_URL --port PORT [--plain]``.

Runs uvicorn (one process) with logging at warning, so the benchmark measures serving, not log writing.
``--plain`` swaps the person-centred, screened view for a pass-through one (one store transaction per
request), to measure the store + API layers on their own.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import anyio

from bcconnect.api import serve
from bcconnect.config import ApiSettings, Settings, StoreSettings
from bcconnect.errors import ResourceGone, ResourceNotFound
from bcconnect.logging import configure_logging
from bcconnect.search import parse_search
from bcconnect.store import (
    EverythingQuery,
    SearchPage,
    StoredResource,
    Visibility,
    everything,
    open_store,
    read_current,
    search,
)
from bcconnect.view import AccessContext, SearchResult, View


class PlainView(View):
    """Read and search straight from the store: no golden patients, no screening (benchmark only)."""

    async def read(self, access: AccessContext, resource_type: str, resource_id: str) -> StoredResource:
        found = await self.store.read(lambda tx: read_current(tx, resource_type, resource_id))
        if found is None:
            raise ResourceNotFound(f"{resource_type}/{resource_id} is not known")
        if found.deleted:
            raise ResourceGone(f"{resource_type}/{resource_id} was deleted")
        return found

    async def search(
        self,
        access: AccessContext,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        *,
        lenient: bool = False,
        at: int | None = None,
        offset: int = 0,
    ) -> SearchResult:
        query = parse_search(resource_type, params, default_count=self.default_count, max_count=self.max_count)
        page: SearchPage = await self.store.read(
            lambda tx: search(tx, query, at=at, offset=offset, visibility=Visibility.everything())
        )
        return SearchResult(query, page)

    async def everything(
        self,
        access: AccessContext,
        patient_id: str,
        params: Sequence[tuple[str, str]],
        *,
        at: int | None = None,
        offset: int = 0,
    ) -> SearchPage:
        query = EverythingQuery(patient_id, count=int(dict(params).get("_count", self.default_count)))
        return await self.store.read(
            lambda tx: everything(tx, query, at=at, offset=offset, visibility=Visibility.everything())
        )


async def run(args: argparse.Namespace) -> None:
    """Serve until interrupted."""
    settings = Settings(store=StoreSettings(url=args.url), api=ApiSettings(host="127.0.0.1", port=args.port))
    if not args.plain:
        await serve(settings)
        return
    async with open_store(args.url) as store:
        await serve(settings, view=PlainView(store))


def main() -> None:
    """Parse arguments, configure logging, serve."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--plain", action="store_true", help="pass-through view (store + API only)")
    args = parser.parse_args()
    configure_logging(level="warning", fmt="json")
    anyio.run(run, args)


if __name__ == "__main__":
    main()
