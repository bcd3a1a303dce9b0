"""Fakes shared by the adapter unit tests: a recording sleep, a settable clock, configurations."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio.lowlevel
import pytest

from bcconnect.adapters import Runtime
from bcconnect.config import (
    AdapterConfig,
    BreakerSettings,
    FetchSettings,
    SourceAuthSettings,
    SourceAuthType,
    SourceKind,
)

NOW = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


@dataclass
class FakeTime:
    """A monotonic clock tests move by hand, and a sleep that records delays and returns at once."""

    now: float = 1000.0
    delays: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()

    def runtime(self, seed: int = 7) -> Runtime:
        return Runtime(rng=random.Random(seed), sleep=self.sleep, monotonic=self.monotonic, utcnow=lambda: NOW)


@pytest.fixture
def fake_time() -> FakeTime:
    """A fresh fake clock and sleep."""
    return FakeTime()


def _make_config(
    *,
    kind: SourceKind = SourceKind.FHIR_API,
    auth: SourceAuthSettings | None = None,
    breaker: BreakerSettings | None = None,
    **fetch: Any,
) -> AdapterConfig:
    """An adapter configuration pointing at a host only a mock transport answers."""
    return AdapterConfig(
        name="RL4",
        ods_code="RL4",
        kind=kind,
        mapping_set="rl4",
        base_url="https://rl4.test/fhir/R4" if kind is SourceKind.FHIR_API else "https://rl4.test",
        auth=auth
        or SourceAuthSettings(
            type=SourceAuthType.OAUTH2_CLIENT_CREDENTIALS,
            client_id="engine",
            client_secret_env="RL4_SECRET",
            token_url="https://rl4.test/oauth2/token",
        ),
        fetch=FetchSettings(**fetch),
        breaker=breaker or BreakerSettings(failure_threshold=50, reset_seconds=30.0),
    )


@pytest.fixture
def make_config() -> Any:
    """Build an adapter configuration: ``make_config(page_size=2, breaker=...)``."""
    return _make_config


@pytest.fixture
def environ() -> dict[str, str]:
    """The secrets the test configurations name."""
    return {"RL4_SECRET": "s3cret", "RNA_KEY": "key-1", "TOKEN": "static-token"}
