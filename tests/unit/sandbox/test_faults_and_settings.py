"""Fault plans are deterministic and follow their rates; settings refuse nonsense."""

from __future__ import annotations

from collections import Counter

import pytest

from bcconnect_sandbox import FaultSettings, SandboxSettings
from bcconnect_sandbox.faults import FaultPlan, HttpFault


def test_fault_plan_is_deterministic_per_seed_and_trust() -> None:
    """The n-th draw is the same for the same seed and trust, and differs for another seed."""
    faults = FaultSettings(seed=4, error_rate=0.3, reset_rate=0.1)
    draws = [FaultPlan(faults, "RL4").next_http() for _ in range(1)]
    a = FaultPlan(faults, "RL4")
    b = FaultPlan(faults, "RL4")
    c = FaultPlan(FaultSettings(seed=5, error_rate=0.3, reset_rate=0.1), "RL4")
    seq_a = [a.next_http() for _ in range(200)]
    assert seq_a == [b.next_http() for _ in range(200)]
    assert seq_a != [c.next_http() for _ in range(200)]
    assert draws[0] == seq_a[0]
    assert sum(a.counts.values()) == sum(1 for f in seq_a if f is not None)


def test_rates_are_followed() -> None:
    """About error_rate of requests fail, split across 500/502/503; a 429 burst lasts burst_length."""
    plan = FaultPlan(FaultSettings(seed=1, error_rate=0.2), "RXK")
    seen = Counter(plan.next_http() for _ in range(5000))
    assert 0.17 <= (5000 - seen[None]) / 5000 <= 0.23
    assert {HttpFault.ERROR_500, HttpFault.ERROR_502, HttpFault.ERROR_503} == set(seen) - {None}
    burst = FaultPlan(FaultSettings(seed=1, burst_429_rate=1.0, burst_length=4), "RL4")
    assert [burst.next_http() for _ in range(4)] == [HttpFault.RATE_LIMITED] * 4


def test_parse_and_validation() -> None:
    """The CLI spec parses; unknown names and out-of-range values are refused."""
    parsed = FaultSettings.parse("error_rate=0.05, latency_ms=20,burst_length=2", seed=3)
    assert (parsed.seed, parsed.error_rate, parsed.latency_ms, parsed.burst_length) == (3, 0.05, 20.0, 2)
    with pytest.raises(ValueError, match="unknown fault"):
        FaultSettings.parse("explode=1")
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultSettings(error_rate=1.5)
    with pytest.raises(ValueError, match="persons"):
        SandboxSettings(density=0, persons=0)
    with pytest.raises(ValueError, match="trusts"):
        SandboxSettings(density=0, trusts=("XYZ",))
    assert SandboxSettings(density=0, seed=2).credentials("RNA").api_key == "rna-sandbox-key-2"
    assert SandboxSettings(density=0).credentials("RBK").client_id is None
