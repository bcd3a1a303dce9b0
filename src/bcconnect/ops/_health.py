"""The readiness checks ``/readyz`` runs: store reachable, migrations current, token keys loaded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from prometheus_client.core import Metric

from bcconnect.errors import StoreError
from bcconnect.ops._asgi import ReadinessCheck, Scrape
from bcconnect.ops._collect import gather_store_facts, store_metric_families
from bcconnect.store import Store


def readiness_checks(store: Store, *, keys_ready: Callable[[], Awaitable[None]] | None = None) -> list[ReadinessCheck]:
    """The standard checks over an open store (and the authenticator's key check, when there is one)."""

    async def migrations() -> None:
        pending = await store.pending_migrations()
        if pending:
            raise StoreError(f"{len(pending)} migration(s) not applied: {', '.join(f'{n:04d}' for n in pending)}")

    checks = [ReadinessCheck("store", store.ping), ReadinessCheck("migrations", migrations)]
    if keys_ready is not None:
        checks.append(ReadinessCheck("keys", keys_ready))
    return checks


def store_scrape(
    store: Store,
    *,
    ods_codes: Mapping[str, str],
    staleness_limits: Mapping[str, float],
    extra: Callable[[], Awaitable[list[Metric]]] | None = None,
) -> Scrape:
    """The ``scrape`` callable for :class:`OpsApp`: the store's facts as metric families, plus ``extra``."""

    async def scrape() -> list[Metric]:
        facts = await gather_store_facts(store, ods_codes=ods_codes, staleness_limits=staleness_limits)
        families = store_metric_families(facts)
        if extra is not None:
            families += await extra()
        return families

    return scrape
