"""Every HTTP fault knob, met through real HTTP, counted, and the same for the same seed."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bcconnect_sandbox import FaultSettings, SandboxSettings, running_sandboxes
from bcconnect_sandbox.testing import bearer

pytestmark = pytest.mark.anyio


def _settings(**faults: Any) -> SandboxSettings:
    return SandboxSettings(density=0, persons=40, seed=5, trusts=("RL4", "RNA"), faults=FaultSettings(seed=9, **faults))


async def _statuses(faults: dict[str, float], n: int = 30) -> tuple[list[int], dict[str, int]]:
    async with running_sandboxes(_settings(**faults)) as world, httpx.AsyncClient() as client:
        headers = await bearer(client, world, "RL4")
        statuses = []
        for _ in range(n):
            response = await client.get(f"{world.base_url('RL4')}/fhir/R4/Patient?_count=5", headers=headers)
            statuses.append(response.status_code)
        return statuses, world.fault_counts()["RL4"]


async def test_server_errors_are_injected_counted_and_deterministic() -> None:
    """error_rate gives 500/502/503 at about that rate; the counts match what the client saw; reruns agree."""
    statuses, counts = await _statuses({"error_rate": 0.5})
    errors = [s for s in statuses if s >= 500]
    assert 5 <= len(errors) <= 25
    assert set(errors) <= {500, 502, 503}
    assert sum(counts.values()) == len(errors)
    for code in set(errors):
        assert counts[f"http_{code}"] == errors.count(code)
    again, _ = await _statuses({"error_rate": 0.5})
    assert again == statuses


async def test_429_bursts_carry_retry_after() -> None:
    """A burst answers burst_length requests in a row with 429 and Retry-After."""
    async with (
        running_sandboxes(_settings(burst_429_rate=0.2, burst_length=3, retry_after_seconds=2)) as world,
        httpx.AsyncClient() as client,
    ):
        headers = await bearer(client, world, "RL4")
        seen = []
        for _ in range(40):
            response = await client.get(f"{world.base_url('RL4')}/fhir/R4/Patient", headers=headers)
            seen.append(response.status_code)
            if response.status_code == 429:
                assert response.headers["retry-after"] == "2"
        first = seen.index(429)
        assert seen[first : first + 3] == [429, 429, 429]
        assert world.fault_counts()["RL4"]["http_429"] == seen.count(429)


async def test_timeout_hangs_past_the_client_timeout() -> None:
    """A hung request makes the client time out; the next request is answered."""
    async with (
        running_sandboxes(_settings(timeout_rate=1.0, hang_seconds=5)) as world,
        httpx.AsyncClient(timeout=0.3) as client,
    ):
        headers = await bearer(client, world, "RL4")
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{world.base_url('RL4')}/fhir/R4/Patient", headers=headers)
        assert world.fault_counts()["RL4"] == {"timeout": 1}


async def test_latency_is_added() -> None:
    """latency_ms delays answers (measured by the server's request order, not by sleeping)."""
    async with running_sandboxes(_settings(latency_ms=150)) as world, httpx.AsyncClient() as client:
        headers = await bearer(client, world, "RL4")
        response = await client.get(f"{world.base_url('RL4')}/fhir/R4/Patient", headers=headers)
        assert response.status_code == 200
        assert response.elapsed.total_seconds() >= 0.15


async def test_reset_truncated_malformed_and_duplicate() -> None:
    """A reset breaks the body; truncated and malformed bodies are not JSON; a duplicate repeats an entry."""
    async with running_sandboxes(_settings(reset_rate=1.0)) as world, httpx.AsyncClient() as client:
        headers = await bearer(client, world, "RL4")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"{world.base_url('RL4')}/fhir/R4/Patient", headers=headers)
        assert world.fault_counts()["RL4"] == {"reset": 1}
    for knob in ("truncated_rate", "malformed_rate"):
        async with running_sandboxes(_settings(**{knob: 1.0})) as world, httpx.AsyncClient() as client:
            headers = await bearer(client, world, "RL4")
            response = await client.get(f"{world.base_url('RL4')}/fhir/R4/Patient", headers=headers)
            assert response.status_code == 200
            with pytest.raises(json.JSONDecodeError):
                json.loads(response.content)
            assert world.fault_counts()["RL4"] == {knob.removesuffix("_rate"): 1}
    async with running_sandboxes(_settings(duplicate_rate=1.0)) as world, httpx.AsyncClient() as client:
        headers = await bearer(client, world, "RL4")
        bundle = (await client.get(f"{world.base_url('RL4')}/fhir/R4/Patient?_count=4", headers=headers)).json()
        ids = [e["resource"]["id"] for e in bundle["entry"]]
        assert len(ids) == 5
        assert len(set(ids)) == 4


async def test_rna_feed_meets_the_same_faults() -> None:
    """The RNA change feed is faulted too (its own counter)."""
    async with running_sandboxes(_settings(error_rate=1.0)) as world, httpx.AsyncClient() as client:
        key = world.credentials("RNA").api_key or ""
        response = await client.get(f"{world.base_url('RNA')}/api/v2/changes", headers={"X-API-Key": key})
        assert response.status_code in {500, 502, 503}
        assert sum(world.fault_counts()["RNA"].values()) == 1
        assert world.request_log("RNA")[-1] == ("GET", "/api/v2/changes", response.status_code)
