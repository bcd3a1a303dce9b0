"""Per-client rate limiting: a token bucket per client, refilled continuously, with an injectable clock.

Each client may burst up to ``burst`` requests, then ``rate`` per second. Memory is bounded: at most
``max_clients`` buckets are kept, the least recently used dropped first (a dropped client simply starts again
with a full bucket, which errs towards serving). One process's limit; replicas each keep their own.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from bcconnect.errors import TooManyRequests


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
