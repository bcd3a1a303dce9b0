"""The readiness checks ``/readyz`` runs: store reachable, migrations current, token keys loaded, and — when the
API reads from a streaming replica — the replica reachable and no further behind than allowed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric

from bcconnect.errors import StoreError
from bcconnect.ops._asgi import ReadinessCheck, Scrape
from bcconnect.ops._collect import gather_store_facts, store_metric_families
from bcconnect.store import Store, replica_lag_seconds


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


def replica_check(replica: Store, *, max_lag_seconds: float) -> ReadinessCheck:
    """``replica``: reachable, and at most ``max_lag_seconds`` behind the primary (its lag is the check's note)."""

    async def run() -> str:
        lag = await replica.read_within(replica_lag_seconds, within_seconds=2.0)
        if lag is None:
            raise StoreError("the read store is not a streaming replica (it is not in recovery)")
        if lag > max_lag_seconds:
            raise StoreError(f"the replica is {_shown(lag)} s behind the primary (allowed: {max_lag_seconds:g} s)")
        return f"{_shown(lag)} s behind the primary"

    return ReadinessCheck("replica", run)


def replica_scrape(replica: Store) -> Callable[[], Awaitable[list[Metric]]]:
    """Extra metric families for :func:`store_scrape`: whether the replica answers and how far behind it is."""

    async def scrape() -> list[Metric]:
        up = GaugeMetricFamily("bcconnect_store_replica_up", "1 when the read replica answered the last scrape")
        lag = GaugeMetricFamily(
            "bcconnect_store_replica_lag_seconds",
            "How far the read replica is behind the primary (0: streaming and caught up)",
        )
        try:
            seconds = await replica.read_within(replica_lag_seconds, within_seconds=2.0)
        except StoreError:
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        if seconds is not None:
            lag.add_metric([], seconds)
        return [up, lag]

    return scrape


def _shown(seconds: float) -> str:
    return "an unknown number of" if seconds == float("inf") else f"{seconds:.1f}"


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
