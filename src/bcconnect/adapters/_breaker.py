"""A circuit breaker per source: stop calling a system that keeps failing, probe it again later."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

import structlog

from bcconnect import metrics
from bcconnect.errors import CircuitOpen

log = structlog.get_logger()


class BreakerState(enum.Enum):
    """Closed: calls flow. Open: calls are refused. Half-open: one trial call decides."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; half-opens ``reset_seconds`` later.

    In half-open state one trial call is let through; its success closes the breaker, its failure opens it
    again for another ``reset_seconds``. ``clock`` is injectable so tests move time instead of sleeping.
    """

    def __init__(
        self,
        *,
        source: str,
        failure_threshold: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._threshold = max(1, failure_threshold)
        self._reset = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        metrics.set_breaker_state(source, "closed")
        self._scopes: dict[str, CircuitBreaker] = {}

    def scoped(self, scope: str) -> CircuitBreaker:
        """The breaker of one part of this source (a FHIR resource type), with the same settings.

        Kept here so a scheduler that keeps this breaker across runs keeps every part's state too; a part
        that keeps failing opens only its own breaker, never the others'.
        """
        found = self._scopes.get(scope)
        if found is None:
            found = self._scopes[scope] = CircuitBreaker(
                source=f"{self._source} {scope}",
                failure_threshold=self._threshold,
                reset_seconds=self._reset,
                clock=self._clock,
            )
        return found

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose reset time has passed reports half-open)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._reset:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def before_call(self) -> None:
        """Raise :class:`CircuitOpen` unless a call may go ahead now."""
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            metrics.set_breaker_state(self._source, "half_open")
            return
        assert self._opened_at is not None
        wait = max(0.0, self._reset - (self._clock() - self._opened_at))
        raise CircuitOpen(
            f"circuit open after {self._failures} consecutive failures; next trial in {wait:.1f}s",
            source=self._source,
        )

    def record_success(self) -> None:
        """A call succeeded: close the breaker and forget past failures."""
        if self._opened_at is not None:
            log.info("breaker_closed", source=self._source)
            metrics.set_breaker_state(self._source, "closed")
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        """A call failed in a way that says the source is unwell (not a 4xx of ours)."""
        self._failures += 1
        reopen = self._trial_in_flight
        self._trial_in_flight = False
        if reopen or (self._opened_at is None and self._failures >= self._threshold):
            self._opened_at = self._clock()
            log.warning("breaker_opened", source=self._source, failures=self._failures)
            metrics.set_breaker_state(self._source, "open")

    def release_trial(self) -> None:
        """The trial call ended without a verdict (cancelled, or a client-side error): allow another."""
        self._trial_in_flight = False
