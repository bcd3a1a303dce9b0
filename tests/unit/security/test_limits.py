"""Request limits: query length, _count cap, _include fan-out and depth, chain depth, deadlines, rate limits."""

from __future__ import annotations

import anyio
import pytest

from bcconnect.errors import InvalidRequest, ServiceUnavailable, TooManyRequests
from bcconnect.security import QueryLimits, RateLimiter, check_query, request_deadline

LIMITS = QueryLimits(max_query_length=200, max_count=100, max_includes=2, max_include_depth=1, max_chain_depth=2)


def test_count_is_capped_at_the_maximum() -> None:
    """_count above the maximum is lowered (FHIR allows fewer), not refused."""
    assert check_query("_count=5000", LIMITS) == 100
    assert check_query("_count=7", LIMITS) == 7
    assert check_query("name=smith", LIMITS) is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("name=" + "a" * 300, "longer than"),
        ("_count=-1", "_count"),
        ("_count=ten", "_count"),
        ("name=a%00b", "NUL"),
        ("_include=A:b&_include=A:c&_revinclude=B:d", "at most 2"),
        ("_include:iterate=A:b&_include:iterate=B:c", "levels deep"),
        ("subject.organization.partof.name=x", "at most 2 links"),
        ("_has:Observation:patient:_has:Encounter:subject:_has:Condition:encounter:code=x", "at most 2 links"),
    ],
)
def test_queries_over_the_limits_are_refused(query: str, message: str) -> None:
    """Each limit gives a 400 that names it."""
    with pytest.raises(InvalidRequest, match=message):
        check_query(query, LIMITS)


def test_queries_within_the_limits_pass() -> None:
    """Two includes, one iterate, two chain links are fine."""
    check_query("_include=A:b&_include:iterate=B:c&subject.organization.name=x", LIMITS)


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    """Burst 3 at rate 1/s: three at once, the fourth waits about a second, and refills with time."""
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=3, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("client-a")
    with pytest.raises(TooManyRequests) as refused:
        limiter.check("client-a")
    assert refused.value.retry_after == 1.0
    limiter.check("client-b")  # buckets are per client
    now[0] = 1.0
    limiter.check("client-a")
    with pytest.raises(TooManyRequests):
        limiter.check("client-a")


def test_retry_after_is_the_time_until_the_next_token() -> None:
    """At 0.5/s an empty bucket needs two seconds (rounded up to whole seconds for the header)."""
    limiter = RateLimiter(rate=0.5, burst=1, clock=lambda: 0.0)
    limiter.check("c")
    assert limiter.retry_after("c") == pytest.approx(2.0)


def test_the_limiter_keeps_a_bounded_number_of_buckets() -> None:
    """Thousands of client ids do not grow memory past max_clients."""
    limiter = RateLimiter(rate=1.0, burst=1, clock=lambda: 0.0, max_clients=10)
    for n in range(1000):
        limiter.check(f"client-{n}")
    assert len(limiter._buckets) == 10


@pytest.mark.anyio
async def test_a_request_over_its_deadline_becomes_503() -> None:
    """request_deadline turns the timeout into ServiceUnavailable (deadline 0: already passed)."""
    with pytest.raises(ServiceUnavailable, match="too long"), request_deadline(0):
        await anyio.sleep(1)
