"""Retry timing: full-jitter exponential backoff and the ``Retry-After`` header."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: a uniform delay in ``[0, min(cap, base·2^attempt)]`` (``attempt`` counts from 0).

    Spreading retries over the whole window keeps many clients from retrying in lock-step.

    >>> backoff_delay(3, base=0.5, cap=30.0, rng=random.Random(1)) <= 4.0
    True
    >>> backoff_delay(20, base=0.5, cap=30.0, rng=random.Random(1)) <= 30.0
    True
    """
    ceiling = min(cap, base * (2 ** min(attempt, 62)))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: datetime, cap: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), at most ``cap``.

    ``None`` when the header is absent or unreadable; a date in the past gives 0.

    >>> parse_retry_after("7", now=datetime(2026, 1, 1, tzinfo=UTC), cap=30.0)
    7.0
    >>> parse_retry_after("Thu, 01 Jan 2026 00:00:12 GMT", now=datetime(2026, 1, 1, tzinfo=UTC), cap=30.0)
    12.0
    >>> parse_retry_after("3600", now=datetime(2026, 1, 1, tzinfo=UTC), cap=30.0)
    30.0
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return max(0.0, min(seconds, cap))
