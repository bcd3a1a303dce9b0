"""RXK's quirks and RNA's vendor change feed, over real HTTP."""

from __future__ import annotations

import itertools
import re
from typing import Any

import httpx
import pytest

from bcconnect.fhir import constants as c
from bcconnect_sandbox import FaultSettings, SandboxSettings, running_sandboxes
from bcconnect_sandbox.dialects.rxk import RETIRED_VERIFICATION_SYSTEM
from bcconnect_sandbox.testing import bearer, walk

pytestmark = pytest.mark.anyio


async def test_rxk_uses_local_codes_retired_statuses_and_vendor_extensions() -> None:
    """No SNOMED/LOINC systems, kebab-case verification codes, extra extensions on every resource."""
    settings = SandboxSettings(density=0, persons=120, seed=4, trusts=("RXK",), rxk_requests_per_second=0)
    async with running_sandboxes(settings) as world, httpx.AsyncClient() as client:
        headers = await bearer(client, world, "RXK")
        fhir = f"{world.base_url('RXK')}/fhir/R4"
        pages = await walk(client, f"{fhir}/Patient?_count=100", headers)
        patients = [e["resource"] for p in pages for e in p["entry"]]
        conditions = (await client.get(f"{fhir}/Condition?_count=100", headers=headers)).json()["entry"]
        assert conditions
        text = str(conditions) + str(patients)
        assert c.SNOMED_SYSTEM not in text
        assert "https://fhir.rxk.nhs.uk/CodeSystem/local-clinical" in text
        assert c.NHS_NUMBER_VERIFICATION_SYSTEM not in text
        assert RETIRED_VERIFICATION_SYSTEM in text
        assert "number-present-and-verified" in text
        assert all(any("fhir.rxk.nhs.uk/StructureDefinition" in x["url"] for x in p["extension"]) for p in patients)


async def test_rxk_throttles_with_429_and_retry_after() -> None:
    """Above the configured rate RXK answers 429 with Retry-After (seconds or an HTTP date), counted."""
    settings = SandboxSettings(density=0, persons=20, seed=4, trusts=("RXK",), rxk_requests_per_second=5)
    async with running_sandboxes(settings) as world, httpx.AsyncClient() as client:
        headers = await bearer(client, world, "RXK")
        answers = [await client.get(f"{world.base_url('RXK')}/fhir/R4/Patient", headers=headers) for _ in range(12)]
        throttled = [r for r in answers if r.status_code == 429]
        assert throttled
        for r in throttled:
            value = r.headers["retry-after"]
            assert value.isdigit() or re.match(r"[A-Z][a-z]{2}, \d{2} ", value)
        assert world.fault_counts()["RXK"]["rate_limit_429"] == len(throttled)


async def _feed(
    client: httpx.AsyncClient, base: str, key: str, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    changes: list[dict[str, Any]] = []
    for _ in range(1000):
        url = f"{base}/api/v2/changes?limit=70" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers={"X-API-Key": key})).json()
        changes += page["changes"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return changes, page["next_cursor"]
    raise AssertionError("feed did not end")


async def test_rna_feed_pages_to_the_end_and_resumes_after_time_moves() -> None:
    """API key required; all changes once, in seq order; after advance the saved cursor gives only new ones."""
    settings = SandboxSettings(density=0, persons=200, seed=8, trusts=("RNA",))
    async with running_sandboxes(settings) as world, httpx.AsyncClient() as client:
        base, key = world.base_url("RNA"), world.credentials("RNA").api_key or ""
        assert (await client.get(f"{base}/api/v2/changes")).status_code == 401
        wrong = await client.get(f"{base}/api/v2/changes", headers={"X-API-Key": "wrong"})
        assert wrong.json() == {"error": "unauthorised"}
        changes, cursor = await _feed(client, base, key)
        seqs = [ch["seq"] for ch in changes]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)
        patients = [ch["data"] for ch in changes if ch["entity"] == "patient"]
        assert {p["patient_id"] for p in patients} == {r[1] for r in world.ground_truth_rows()}
        assert all(re.fullmatch(r"\d{2}/\d{2}/\d{4}", p["dob"]) for p in patients)
        assert {p["sex"] for p in patients} <= {"M", "F", "U"}
        assert {"shcr_objection", "nhs_no_status", "surname", "forenames"} <= set(patients[0])
        await world.advance(days=10)
        fresh, _ = await _feed(client, base, key, cursor)
        assert fresh
        assert min(ch["seq"] for ch in fresh) > max(seqs)
        assert {ch["op"] for ch in fresh} <= {"upsert", "delete"}
        assert all("data" not in ch for ch in fresh if ch["op"] == "delete")
        bad = await client.get(f"{base}/api/v2/changes?cursor=nonsense", headers={"X-API-Key": key})
        assert bad.status_code == 400


async def test_rna_out_of_order_deliveries_are_counted() -> None:
    """Swapped changes show as a falling seq; the count says how many swaps were served."""
    settings = SandboxSettings(
        density=0, persons=60, seed=8, trusts=("RNA",), faults=FaultSettings(seed=1, out_of_order_rate=0.2)
    )
    async with running_sandboxes(settings) as world, httpx.AsyncClient() as client:
        base, key = world.base_url("RNA"), world.credentials("RNA").api_key or ""
        changes, _ = await _feed(client, base, key)
        falls = sum(1 for a, b in itertools.pairwise(changes) if b["seq"] < a["seq"])
        assert falls > 0
        assert world.fault_counts()["RNA"]["out_of_order"] == falls


async def test_rna_duplicate_delivery_repeats_a_change() -> None:
    """With duplicate_rate 1 every page ends with a repeat of its first change, counted once per page."""
    faults = FaultSettings(seed=1, duplicate_rate=1.0)
    settings = SandboxSettings(density=0, persons=30, seed=8, trusts=("RNA",), faults=faults)
    async with running_sandboxes(settings) as world, httpx.AsyncClient() as client:
        key = {"X-API-Key": world.credentials("RNA").api_key or ""}
        page = (await client.get(f"{world.base_url('RNA')}/api/v2/changes?limit=10", headers=key)).json()
        assert len(page["changes"]) == 11
        assert page["changes"][-1] == page["changes"][0]
        assert world.fault_counts()["RNA"] == {"duplicate": 1}
