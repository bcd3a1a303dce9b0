"""Fault injection: what goes wrong with the next request or message, drawn deterministically, and counted.

One :class:`FaultPlan` per trust draws a fixed number of numbers per request from a generator seeded with the
fault seed and the trust, so the n-th request always meets the same fault whatever happened before. Every fault
served is counted under a stable name (``http_503``, ``reset``, ``hl7_duplicate`` …) so a test can reconcile
what the sandbox sent with what the engine stored.
"""

from __future__ import annotations

import enum
import random
from collections import Counter

from bcconnect_sandbox.settings import FaultSettings


class HttpFault(enum.Enum):
    """What happens to one HTTP data request."""

    ERROR_500 = "http_500"
    ERROR_502 = "http_502"
    ERROR_503 = "http_503"
    RATE_LIMITED = "http_429"
    TIMEOUT = "timeout"
    RESET = "reset"
    TRUNCATED = "truncated"
    MALFORMED = "malformed"
    DUPLICATE = "duplicate"

    @property
    def status(self) -> int | None:
        """The HTTP status this fault answers with instead of the real one (None: the real one)."""
        return {"http_500": 500, "http_502": 502, "http_503": 503, "http_429": 429}.get(self.value)


class MessageFault(enum.Enum):
    """What happens to one HL7 message (or one RNA feed change)."""

    MALFORMED = "malformed"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


class FaultPlan:
    """Draws and counts the faults of one trust."""

    def __init__(self, faults: FaultSettings, trust: str) -> None:
        self.settings = faults
        self.trust = trust
        self._http = random.Random(f"{faults.seed}:{trust}:http")
        self._messages = random.Random(f"{faults.seed}:{trust}:messages")
        self._burst_left = 0
        self.counts: Counter[str] = Counter()

    def count(self, name: str, n: int = 1) -> None:
        """Record that a fault (or a throttling answer) named ``name`` was served."""
        self.counts[name] += n

    def next_http(self) -> HttpFault | None:
        """The fault for the next data request, or None. Counted when drawn (the caller serves it)."""
        roll, pick = self._http.random(), self._http.random()
        fault = self._choose_http(roll, pick)
        if fault is not None:
            self.count(fault.value)
        return fault

    def _choose_http(self, roll: float, pick: float) -> HttpFault | None:
        s = self.settings
        if self._burst_left:
            self._burst_left -= 1
            return HttpFault.RATE_LIMITED
        for rate, fault in (
            (s.error_rate, None),
            (s.burst_429_rate, HttpFault.RATE_LIMITED),
            (s.timeout_rate, HttpFault.TIMEOUT),
            (s.reset_rate, HttpFault.RESET),
            (s.truncated_rate, HttpFault.TRUNCATED),
            (s.malformed_rate, HttpFault.MALFORMED),
            (s.duplicate_rate, HttpFault.DUPLICATE),
        ):
            if roll < rate:
                if fault is None:
                    return (HttpFault.ERROR_500, HttpFault.ERROR_502, HttpFault.ERROR_503)[int(pick * 3)]
                if fault is HttpFault.RATE_LIMITED:
                    self._burst_left = s.burst_length - 1
                return fault
            roll -= rate
        return None

    def next_message(self) -> MessageFault | None:
        """The fault for the next HL7 message or feed change, or None. Counted by the caller when applied,
        since an out-of-order swap needs a successor to swap with."""
        roll = self._messages.random()
        s = self.settings
        for rate, fault in (
            (s.hl7_malformed_rate, MessageFault.MALFORMED),
            (s.duplicate_rate, MessageFault.DUPLICATE),
            (s.out_of_order_rate, MessageFault.OUT_OF_ORDER),
        ):
            if roll < rate:
                return fault
            roll -= rate
        return None
