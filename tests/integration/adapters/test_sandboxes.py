"""The adapters against the loopback trust sandboxes: real HTTP, real paging, real faults."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bcconnect.adapters import FhirApiSource, Hl7FileSource, MllpDelivery, Page, open_source, serve_mllp
from bcconnect.config import (
    AdapterConfig,
    FetchSettings,
    Hl7Settings,
    SourceAuthSettings,
    SourceAuthType,
    SourceKind,
)
from bcconnect.hl7v2 import AckCode
from bcconnect_sandbox import FaultSettings, SandboxSettings, World, running_sandboxes

PERSONS = 20
FAST_RETRY = {"backoff_base_seconds": 0.001, "backoff_max_seconds": 0.01, "max_retries": 8}


def fhir_config(world: World, trust: str, **fetch: Any) -> tuple[AdapterConfig, dict[str, str]]:
    credentials = world.credentials(trust)
    config = AdapterConfig(
        name=trust,
        ods_code=trust,
        kind=SourceKind.FHIR_API,
        mapping_set=trust.lower(),
        base_url=f"{world.base_url(trust)}/fhir/R4",
        auth=SourceAuthSettings(
            type=SourceAuthType.OAUTH2_CLIENT_CREDENTIALS,
            client_id=credentials.client_id,
            client_secret_env="SANDBOX_SECRET",
        ),
        fetch=FetchSettings(**fetch),
    )
    return config, {"SANDBOX_SECRET": credentials.client_secret or ""}


def rna_config(world: World, **fetch: Any) -> tuple[AdapterConfig, dict[str, str]]:
    config = AdapterConfig(
        name="RNA",
        ods_code="RNA",
        kind=SourceKind.JSON_API,
        mapping_set="rna",
        base_url=world.base_url("RNA"),
        auth=SourceAuthSettings(type=SourceAuthType.API_KEY, api_key_env="RNA_KEY"),
        fetch=FetchSettings(**fetch),
    )
    return config, {"RNA_KEY": world.credentials("RNA").api_key or ""}


async def pull(source: Any, cursor: str | None) -> list[Page]:
    async with contextlib.aclosing(source.pages(cursor)) as pages:
        return [page async for page in pages]


async def aenumerate(pages: Any) -> Any:
    number = 0
    async for page in pages:
        yield number, page
        number += 1


def versions(pages: list[Page]) -> list[tuple[str, str | None, str]]:
    return [(r.source_key, r.version, r.content_hash) for p in pages for r in p.records]


@pytest.mark.anyio
@pytest.mark.slow
async def test_rl4_full_pull_resume_and_deletes() -> None:
    """RL4: every type paged by next links, no version twice, a resumed pull sees only changes."""
    settings = SandboxSettings(density=0, persons=PERSONS, trusts=("RL4",))
    with anyio.fail_after(30):
        async with running_sandboxes(settings) as world:
            types = ("Organization", "Patient", "Encounter", "Condition", "Observation")
            config, environ = fhir_config(world, "RL4", page_size=7, resource_types=types)
            async with open_source(config, environ=environ) as source:
                assert isinstance(source, FhirApiSource)
                first = await pull(source, None)
                patient_ids = sorted([i async for i in source.list_source_ids("Patient")])
                await world.advance(days=200)
                second = await pull(source, first[-1].cursor)
    seen = versions(first)
    assert len(seen) == len(set(seen))
    assert not [r for p in first for r in p.rejects]
    types = Counter(r.record_type for p in first for r in p.records)
    assert types["Patient"] == len(patient_ids) > 7  # more than one page of patients
    assert {"Encounter", "Organization", "Observation"} <= set(types)
    assert sorted(r.source_key.split("/")[1] for p in first for r in p.records if r.record_type == "Patient") == (
        patient_ids
    )
    changed = [r for p in second for r in p.records if not r.deleted]
    assert changed, "two hundred simulated days change something"
    deleted = [r for p in second for r in p.records if r.deleted]
    assert deleted, "... and delete something (entered in error)"
    # the sandbox's DELETE history entries carry no etag or lastModified (the contract does not require them)
    assert all(r.source_key.count("/") == 1 and r.payload for r in deleted)
    old = {(key, version) for key, version, _ in seen}
    assert all(r.last_updated is not None for r in changed)
    new_versions = [r for r in changed if (r.source_key, r.version) not in old]
    assert new_versions
    cursor = orjson.loads(second[-1].cursor)["types"]
    assert cursor["Patient"]["watermark"] >= orjson.loads(first[-1].cursor)["types"]["Patient"]["watermark"]


@pytest.mark.anyio
async def test_rl4_expired_token_is_refreshed_once() -> None:
    """When the sandbox expires every token, the adapter fetches one new token and goes on."""
    settings = SandboxSettings(density=0, persons=PERSONS, trusts=("RL4",))
    with anyio.fail_after(30):
        async with running_sandboxes(settings) as world:
            config, environ = fhir_config(world, "RL4", resource_types=("Patient", "Encounter"))
            async with open_source(config, environ=environ) as source:
                assert isinstance(source, FhirApiSource)
                async with contextlib.aclosing(source.pages(None)) as pages:
                    async for number, _ in aenumerate(pages):
                        if number == 0:
                            world.expire_tokens()
                assert source.stats.auth_refreshes == 1
    tokens = [status for method, path, status in world.request_log("RL4") if path.startswith("/oauth2/token")]
    assert tokens == [200, 200]


@pytest.mark.anyio
@pytest.mark.slow
async def test_rl4_faults_do_not_change_what_is_pulled() -> None:
    """5xx, 429 bursts, resets, truncated and malformed bodies, hangs: retried until the data is whole."""
    faults = FaultSettings(
        seed=11,
        error_rate=0.15,
        burst_429_rate=0.05,
        burst_length=2,
        retry_after_seconds=0,
        reset_rate=0.05,
        truncated_rate=0.05,
        malformed_rate=0.05,
        timeout_rate=0.03,
        hang_seconds=5.0,
        duplicate_rate=0.05,
    )
    clean_settings = SandboxSettings(density=0, persons=PERSONS, trusts=("RL4",))
    with anyio.fail_after(60):
        async with running_sandboxes(clean_settings) as world:
            config, environ = fhir_config(world, "RL4", page_size=10)
            async with open_source(config, environ=environ) as source:
                clean = await pull(source, None)
        async with running_sandboxes(clean_settings.with_faults(faults)) as world:
            config, environ = fhir_config(world, "RL4", page_size=10, timeout_seconds=0.5, **FAST_RETRY)
            async with open_source(config, environ=environ) as source:
                assert isinstance(source, FhirApiSource)
                faulty = await pull(source, None)
                stats = source.stats
            counts = world.fault_counts()["RL4"]
    assert sorted(versions(faulty)) == sorted(versions(clean))
    assert stats.retries > 0
    assert sum(counts.values()) > 0
    if counts.get("truncated", 0) + counts.get("malformed", 0):
        assert stats.malformed_bodies > 0


@pytest.mark.anyio
@pytest.mark.slow
async def test_rxk_rate_limit_is_honoured_with_retry_after() -> None:
    """RXK answers 429 with Retry-After (seconds, then an HTTP date) under load; the pull still completes."""
    settings = SandboxSettings(density=0, persons=PERSONS, trusts=("RXK",), rxk_requests_per_second=3)
    with anyio.fail_after(30):
        async with running_sandboxes(settings) as world:
            config, environ = fhir_config(
                world,
                "RXK",
                page_size=10,
                resource_types=("Organization", "Patient", "Encounter"),
                backoff_max_seconds=1.5,
            )
            async with open_source(config, environ=environ) as source:
                assert isinstance(source, FhirApiSource)
                pages = await pull(source, None)
                throttled = source.stats.throttled
    statuses = Counter(status for _, _, status in world.request_log("RXK"))
    assert throttled == statuses[429] > 0
    types = {r.record_type for p in pages for r in p.records}
    assert types == {"Organization", "Patient", "Encounter"}


@pytest.mark.anyio
async def test_rna_change_feed_pages_and_resumes() -> None:
    """RNA: the change feed is followed to its end; a resumed pull after time moves on sees new changes."""
    settings = SandboxSettings(density=0, persons=PERSONS, trusts=("RNA",))
    with anyio.fail_after(30):
        async with running_sandboxes(settings) as world:
            config, environ = rna_config(world, page_size=25)
            async with open_source(config, environ=environ) as source:
                first = await pull(source, None)
                await world.advance(days=30)
                second = await pull(source, first[-1].cursor)
    records = [r for p in first for r in p.records]
    assert len(first) > 1
    assert {r.record_type for r in records} >= {"patient", "encounter"}
    assert all(r.source_key.startswith(f"{r.record_type}/") for r in records)
    patient = next(r for r in records if r.record_type == "patient" and not r.deleted)
    assert "patient_id" in orjson.loads(patient.payload)
    seqs = [int(r.version or 0) for p in second for r in p.records]
    assert seqs
    assert min(seqs) > max(int(r.version or 0) for r in records)


@pytest.mark.anyio
async def test_rbk_mllp_and_file_drop_from_the_sender(tmp_path: Path) -> None:
    """RBK's sender delivers by MLLP (ACKed after our sink) and by file drop; both arrive whole."""
    faults = FaultSettings(seed=5, hl7_malformed_rate=0.1)
    settings = SandboxSettings(density=0, persons=PERSONS, trusts=("RBK",), faults=faults)
    deliveries: list[MllpDelivery] = []

    async def sink(delivery: MllpDelivery) -> AckCode | None:
        deliveries.append(delivery)
        return None

    listener_config = AdapterConfig(
        name="RBK",
        ods_code="RBK",
        kind=SourceKind.HL7V2,
        mapping_set="rbk",
        hl7v2=Hl7Settings(mode="mllp", listen_host="127.0.0.1", listen_port=0),
    )
    drop = tmp_path / "drop"
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            port = await tg.start(serve_mllp, listener_config, sink)
            async with running_sandboxes(settings, hl7_target=("127.0.0.1", port), hl7_drop_dir=drop) as world:
                await world.advance(days=60)
                counts = await world.deliver_hl7()
            tg.cancel_scope.cancel()
        file_config = AdapterConfig(
            name="RBK",
            ods_code="RBK",
            kind=SourceKind.HL7V2,
            mapping_set="rbk",
            hl7v2=Hl7Settings(mode="file", drop_dir=str(drop)),
        )
        async with open_source(file_config) as source:
            assert isinstance(source, Hl7FileSource)
            pages = await pull(source, None)
    assert counts["messages"] > 10
    assert counts.get("acked_ar", 0) > 0, "the seeded faults corrupt some messages"
    assert counts.get("undelivered", 0) == 0
    assert counts.get("acked_aa", 0) == len([d for d in deliveries if d.record])
    assert counts.get("acked_ar", 0) == len([d for d in deliveries if d.reject])
    assert counts["messages"] == counts["files"] == len(deliveries)
    from_files = sorted(r.source_key for p in pages for r in p.records)
    assert from_files == sorted(d.record.source_key for d in deliveries if d.record)
    assert all(key.startswith("RBK|") for key in from_files)
    assert len([r for p in pages for r in p.rejects]) == counts.get("acked_ar", 0)
