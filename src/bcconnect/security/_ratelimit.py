"""Rate limiting: token buckets refilled continuously (each key may burst ``burst``, then ``rate`` per second).

:class:`RateLimiter` keeps one process's buckets in memory (bounded, least recently used dropped first).
:class:`SharedRateLimits` keeps per-user, per-client and per-address buckets in the store, so every API process
draws on the same allowance; the default sizes and the traffic model behind them are in docs/operations.md.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import anyio

from bcconnect import metrics
from bcconnect.errors import TooManyRequests
from bcconnect.store import Store, Tx


class RateLimiter:
    """Token buckets keyed by client (client id, else user, else remote address)."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._max = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        # the API may call from worker threads as well as the event loop
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> float:
        """Take one token for ``key``; 0.0 when allowed, else the seconds until a token is available."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.pop(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self._rate
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
            return wait

    def check(self, key: str) -> None:
        """Take one token for ``key``; TooManyRequests (429) with ``retry_after`` in whole seconds if none."""
        wait = self.retry_after(key)
        if wait > 0:
            raise TooManyRequests(
                "too many requests from this client; slow down", retry_after=float(max(1, math.ceil(wait)))
            )


@dataclass(frozen=True, slots=True)
class Limit:
    """A sustained rate (requests per second) and the burst allowed above it."""

    rate: float
    burst: int


#: the kinds of key a request is limited by
LIMIT_KINDS = ("user", "client", "address")


def take_tokens(tx: Tx, bucket: str, *, want: int, limit: Limit, now: float) -> tuple[int, float]:
    """Take up to ``want`` whole tokens from a shared bucket; returns (tokens granted, seconds until one more).

    The row is locked for the transaction (PostgreSQL ``FOR UPDATE``; SQLite's single writer), so concurrent
    processes never hand out the same token twice.
    """
    tx.execute(
        "INSERT INTO rate_limit_buckets (bucket, tokens, updated) VALUES (?, ?, ?) ON CONFLICT (bucket) DO NOTHING",
        (bucket, float(limit.burst), now),
    )
    lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
    row = tx.query_one(f"SELECT tokens, updated FROM rate_limit_buckets WHERE bucket = ?{lock}", (bucket,))  # noqa: S608 - constant suffix
    assert row is not None
    tokens = min(float(limit.burst), float(row[0]) + max(0.0, now - float(row[1])) * limit.rate)
    granted = min(want, int(tokens))
    tokens -= granted
    tx.execute("UPDATE rate_limit_buckets SET tokens = ?, updated = ? WHERE bucket = ?", (tokens, now, bucket))
    wait = 0.0 if granted else (1.0 - tokens) / limit.rate
    return granted, wait


class SharedRateLimits:
    """Per-user, per-client and per-address limits whose buckets live in the store, shared by every process.

    A request costs one token from each bucket that applies. To keep the store out of most requests, a process
    takes a small *lease* of tokens at a time (a tenth of the burst, at most a second's worth) and spends it
    locally; an unspent lease lapses after ``lease_seconds``. Across N processes a key can overshoot its
    burst by at most N leases — a few percent — which is the price of not writing the store on every request.
    """

    def __init__(
        self,
        store: Store,
        limits: Mapping[str, Limit],
        *,
        lease_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._limits = dict(limits)
        self._lease_seconds = lease_seconds
        self._clock = clock
        #: (kind, key) -> [tokens left, lapses at]
        self._leases: dict[tuple[str, str], list[float]] = {}
        #: keys whose lease is being refilled from the store now, and the event that says it is done
        self._refilling: dict[tuple[str, str], anyio.Event] = {}
        for kind, limit in self._limits.items():
            metrics.RATE_LIMIT_RATE.labels(limit=kind).set(limit.rate)
            metrics.RATE_LIMIT_BURST.labels(limit=kind).set(limit.burst)

    def lease_size(self, limit: Limit) -> int:
        """How many tokens one trip to the store takes for a bucket with this limit.

        >>> SharedRateLimits.lease_size(None, Limit(rate=1000, burst=2000))  # type: ignore[arg-type]
        200
        >>> SharedRateLimits.lease_size(None, Limit(rate=5, burst=50))  # type: ignore[arg-type]
        5
        """
        return max(1, min(limit.burst // 10, math.ceil(limit.rate)))

    async def check(self, kind: str, key: str) -> None:
        """Spend one token of ``kind``'s bucket for ``key``; TooManyRequests (429) with Retry-After if none."""
        limit = self._limits[kind]
        while True:
            now = self._clock()
            # no await between looking at a lease and spending from it: on one event loop this is atomic
            lease = self._leases.get((kind, key))
            if lease is not None and lease[0] >= 1 and lease[1] > now:
                lease[0] -= 1
                return
            refilling = self._refilling.get((kind, key))
            if refilling is None:
                break
            await refilling.wait()  # one trip to the store per key at a time; then spend from what it brought
        done = self._refilling[(kind, key)] = anyio.Event()
        try:
            granted, wait = await self._store.write(
                partial(take_tokens, bucket=f"{kind}:{key}", want=self.lease_size(limit), limit=limit, now=now)
            )
        finally:
            del self._refilling[(kind, key)]
            done.set()
        if granted:
            self._leases[(kind, key)] = [granted - 1, now + self._lease_seconds]
            if len(self._leases) > _MAX_LEASES:
                self._leases = {k: v for k, v in self._leases.items() if v[1] > now}
            return
        metrics.RATE_LIMITED.labels(limit=kind).inc()
        raise TooManyRequests(
            f"too many requests for this {kind}; slow down", retry_after=float(max(1, math.ceil(wait)))
        )


#: leases kept before lapsed ones are swept (each is a few dozen bytes)
_MAX_LEASES = 10_000
