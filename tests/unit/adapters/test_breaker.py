"""The circuit breaker's states, driven by a fake clock."""

from __future__ import annotations

import pytest

from bcconnect.adapters import BreakerState, CircuitBreaker
from bcconnect.errors import CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read the state through a call, so each assertion reads it afresh."""
    return breaker.state


def make() -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker(source="RL4", failure_threshold=3, reset_seconds=10.0, clock=clock), clock


def test_opens_after_threshold_consecutive_failures() -> None:
    """Two failures keep it closed; a success resets the count; three in a row open it."""
    breaker, _ = make()
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) is BreakerState.CLOSED
    breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpen, match=r"RL4: circuit open after 3 consecutive failures; next trial in 10\.0s"):
        breaker.before_call()


def test_half_open_lets_one_trial_through_and_closes_on_success() -> None:
    """After reset_seconds one call may try; a second concurrent one is still refused; success closes."""
    breaker, clock = make()
    for _ in range(3):
        breaker.record_failure()
    clock.now = 10.0
    assert state(breaker) is BreakerState.HALF_OPEN
    breaker.before_call()
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    breaker.record_success()
    assert state(breaker) is BreakerState.CLOSED
    breaker.before_call()


def test_failed_trial_reopens_for_another_period() -> None:
    """A failing trial opens the breaker again from now."""
    breaker, clock = make()
    for _ in range(3):
        breaker.record_failure()
    clock.now = 12.0
    breaker.before_call()
    breaker.record_failure()
    assert state(breaker) is BreakerState.OPEN
    clock.now = 21.9
    assert state(breaker) is BreakerState.OPEN
    clock.now = 22.0
    assert state(breaker) is BreakerState.HALF_OPEN


def test_released_trial_allows_another() -> None:
    """A trial that ended without a verdict (cancelled) does not leave the breaker stuck."""
    breaker, clock = make()
    for _ in range(3):
        breaker.record_failure()
    clock.now = 10.0
    breaker.before_call()
    breaker.release_trial()
    breaker.before_call()
