"""Internal signals between one HTTP attempt and the retry loop; never leave the adapter package."""

from __future__ import annotations

from datetime import datetime

import httpx

from bcconnect.adapters._retry import parse_retry_after
from bcconnect.errors import SourceAuthError, SourceProtocolError

#: statuses worth another attempt: throttling and the server-side failures that are usually brief
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class TransientFault(Exception):
    """This attempt failed in a way another attempt may not; ``retry_after`` is the server's hint."""

    def __init__(self, reason: str, *, retry_after: float | None = None, unhealthy: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        #: counts towards the circuit breaker (throttling does not: the source is busy, not broken)
        self.unhealthy = unhealthy


class Unauthorised(Exception):
    """HTTP 401 on a data call: the token may have expired; refreshing once may help."""


def check_status(response: httpx.Response, *, source: str, what: str, now: datetime, retry_after_cap: float) -> None:
    """Raise the fault a non-2xx response stands for; return quietly on success."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in RETRYABLE_STATUSES:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now, cap=retry_after_cap)
        raise TransientFault(f"{what}: HTTP {status}", retry_after=retry_after, unhealthy=status != 429)
    if status == 401:
        raise Unauthorised(f"{what}: HTTP 401")
    if status == 403:
        raise SourceAuthError(f"{what}: HTTP 403, access refused", source=source)
    raise SourceProtocolError(f"{what}: unexpected HTTP {status}", source=source)
