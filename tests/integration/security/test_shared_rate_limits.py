"""Rate limits shared by every API process through the store: per user and per client, separately."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from bcconnect.errors import TooManyRequests
from bcconnect.security import Limit, SharedRateLimits
from bcconnect.store import Store

pytestmark = pytest.mark.anyio


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _allowed(limits: SharedRateLimits, kind: str, key: str) -> bool:
    try:
        await limits.check(kind, key)
    except TooManyRequests:
        return False
    return True


async def test_two_processes_share_one_allowance(store: Store) -> None:
    """Two limiters on one store (two API processes) together admit exactly the burst, then refuse."""
    clock = Clock()
    tight = {"user": Limit(rate=0.001, burst=10), "client": Limit(rate=0.001, burst=10), "address": Limit(1, 1)}
    first = SharedRateLimits(store, tight, clock=clock)
    second = SharedRateLimits(store, tight, clock=clock)
    admitted = 0
    for i in range(30):
        admitted += await _allowed(first if i % 2 else second, "user", "u1")
    assert admitted == 10  # one process alone would also have admitted its own 10 without the shared bucket
    refused_before = REGISTRY.get_sample_value("bcconnect_rate_limited_requests_total", {"limit": "user"}) or 0
    with pytest.raises(TooManyRequests) as refused:
        await first.check("user", "u1")
    assert refused.value.retry_after >= 1
    assert REGISTRY.get_sample_value("bcconnect_rate_limited_requests_total", {"limit": "user"}) == refused_before + 1
    clock.now += 2_000  # the bucket refills at its rate
    assert await _allowed(second, "user", "u1")


async def test_users_and_clients_are_limited_separately(store: Store) -> None:
    """One busy clinician is stopped at the user limit; colleagues on the same EPR client carry on."""
    clock = Clock()
    limits = SharedRateLimits(
        store,
        {"user": Limit(rate=0.001, burst=5), "client": Limit(rate=0.001, burst=1000), "address": Limit(1, 1)},
        clock=clock,
    )
    for _ in range(5):
        assert await _allowed(limits, "user", "busy")
        assert await _allowed(limits, "client", "epr")
    assert not await _allowed(limits, "user", "busy")
    assert await _allowed(limits, "user", "colleague")
    assert await _allowed(limits, "client", "epr")


async def test_a_lease_spares_the_store_for_large_allowances(store: Store) -> None:
    """A client allowance of 1,000/s is taken from the store 200 tokens at a time, not one per request."""
    clock = Clock()
    big = Limit(rate=1000, burst=2000)
    limits = SharedRateLimits(store, {"user": big, "client": big, "address": big}, clock=clock)
    writes = 0
    original = store.write

    async def counting_write(fn):  # type: ignore[no-untyped-def]
        nonlocal writes
        writes += 1
        return await original(fn)

    store.write = counting_write  # type: ignore[method-assign]
    try:
        for _ in range(400):
            await limits.check("client", "epr")
    finally:
        store.write = original  # type: ignore[method-assign]
    assert writes == 2


async def test_concurrent_requests_wait_for_one_refill_instead_of_draining_the_bucket(store: Store) -> None:
    """Fifty requests arriving together for one client make two trips to the store (leases of 30) and are all
    served; each taking its own lease would empty the 300-token bucket and refuse most of them."""
    import anyio

    clock = Clock()
    limit = Limit(rate=1000, burst=300)
    limits = SharedRateLimits(store, {"user": limit, "client": limit, "address": limit}, clock=clock)
    refused = 0

    async def one() -> None:
        nonlocal refused
        refused += not await _allowed(limits, "client", "epr")

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(one)
    assert refused == 0
    remaining = await store.read(
        lambda tx: tx.query_one("SELECT tokens FROM rate_limit_buckets WHERE bucket = 'client:epr'")
    )
    assert remaining is not None
    assert remaining[0] == 300 - 2 * 30  # two leases (a tenth of the burst each) taken, not fifty
