"""One pass of one adapter, and of all of them: fetch pages, prepare them, commit each with its cursor.

The source fetches the next page while the current one is mapped and committed (a one-page buffer keeps memory
bounded). Every page is committed in ONE transaction together with the cursor that resumes after it, so a crash
at any point leaves the store as if the sync had stopped after the last committed page. A failing trust never
blocks the others: each adapter runs in its own task and its failure is recorded in its report.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial

import anyio
import httpx
import structlog
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from bcconnect import metrics
from bcconnect.adapters import CircuitBreaker, FhirApiSource, Page, RawRecord, Source, open_source
from bcconnect.config import AdapterConfig, Settings, SourceKind
from bcconnect.errors import BcconnectError
from bcconnect.fhir.constants import source_system
from bcconnect.ingest import _commit, _runs
from bcconnect.ingest._prepare import prepare_page
from bcconnect.ingest._report import PageCounts, SyncReport
from bcconnect.logging import get_logger
from bcconnect.mapping import MappingContext, MappingSet, load_mapping_set
from bcconnect.store import Store

log = get_logger("bcconnect.ingest")

#: called after each committed page with the adapter name and the running report (progress bars)
ProgressCallback = Callable[[str, SyncReport], None]


def resolve_adapter(config: AdapterConfig, settings: Settings) -> AdapterConfig:
    """Resolve an adapter's relative paths (the HL7 drop folder) against the engine's configuration root."""
    if config.kind is SourceKind.HL7V2 and config.hl7v2.drop_dir:
        drop = settings.resolve(config.hl7v2.drop_dir)
        return replace(config, hl7v2=replace(config.hl7v2, drop_dir=str(drop)))
    return config


def mapping_context_factory(config: AdapterConfig, received_at: str) -> Callable[[RawRecord], MappingContext]:
    """How a record of this adapter is described to the mapping engine."""
    system = source_system(config.ods_code)

    def context_for(record: RawRecord) -> MappingContext:
        return MappingContext(
            ods_code=config.ods_code,
            source_system=system,
            source_key=record.source_key,
            received_at=received_at,
            local_mrn_system=config.identifiers.mrn_system,
        )

    return context_for


async def process_page(
    page: Page,
    *,
    config: AdapterConfig,
    store: Store,
    mapping_set: MappingSet,
    cursor_types: frozenset[str] | None = None,
) -> PageCounts:
    """Prepare one page (in a worker thread) and commit it with its cursor in one transaction (only the entries
    of ``cursor_types`` when the worker reads only those resource types)."""
    keys = [record.source_key for record in page.records]
    landed = await store.read(partial(_commit.landed_state, adapter=config.name, source_keys=keys))
    received_at = _runs.utc_now()
    prepared = await anyio.to_thread.run_sync(
        partial(
            prepare_page,
            page.records,
            page.rejects,
            page.cursor,
            landed=landed,
            mapping_set=mapping_set,
            context_for=mapping_context_factory(config, received_at),
        )
    )
    return await store.write(
        partial(
            _commit.commit_page,
            prepared=prepared,
            adapter=config.name,
            ods_code=config.ods_code,
            mapping_set=mapping_set,
            received_at=received_at,
            cursor_types=cursor_types,
        )
    )


async def _produce(source: Source, cursor: str | None, send: ObjectSendStream[Page]) -> None:
    async with send, contextlib.aclosing(source.pages(cursor)) as pages:  # type: ignore[type-var]
        async for page in pages:
            await send.send(page)


async def _consume(
    receive: ObjectReceiveStream[Page],
    source: Source,
    *,
    config: AdapterConfig,
    store: Store,
    mapping_set: MappingSet,
    report: SyncReport,
    progress: ProgressCallback | None,
    cursor_types: frozenset[str] | None,
) -> None:
    async with receive:
        async for page in receive:
            counts = await process_page(
                page, config=config, store=store, mapping_set=mapping_set, cursor_types=cursor_types
            )
            report.add(counts)
            _count_page(config.name, counts)
            await source.acknowledge(page.cursor)
            if progress is not None:
                progress(config.name, report)


def _count_page(adapter: str, counts: PageCounts) -> None:
    """Count a committed page in this process's metrics (live during the sync, unlike the run history)."""
    metrics.INGEST_PAGES.labels(adapter=adapter).inc()
    for outcome in ("new", "changed", "unchanged", "quarantined"):
        value = getattr(counts, outcome)
        if value:
            metrics.INGEST_RECORDS.labels(adapter=adapter, outcome=outcome).inc(value)


async def sync_adapter(
    config: AdapterConfig,
    *,
    store: Store,
    mapping_set: MappingSet,
    environ: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: ProgressCallback | None = None,
    breaker: CircuitBreaker | None = None,
    resource_types: Sequence[str] | None = None,
) -> SyncReport:
    """One pass of one adapter: everything the source has after the committed cursor, then return.

    ``resource_types`` (FHIR API sources): read only these types and commit only their part of the adapter's
    cursor — one worker's share when the adapter's types are leased one by one to several workers.

    Source failures (after the adapter's own retries) end the run early but cleanly: what was committed stays,
    the report carries the error, and the next run resumes from the last committed cursor. Pass the same
    ``breaker`` to successive runs (the daemon does) so an open circuit survives between them.
    """
    report = SyncReport(adapter=config.name)
    cursor_types: frozenset[str] | None = None
    if resource_types is not None:
        cursor_types = frozenset(resource_types)
        config = replace(config, fetch=replace(config.fetch, resource_types=tuple(resource_types)))
    started = time.perf_counter()
    run_id = await store.write(partial(_runs.start_run, adapter=config.name))
    # every log line of this run, in this task and the tasks it starts, carries the run id
    bound = structlog.contextvars.bind_contextvars(run_id=run_id, adapter=config.name)
    try:
        cursor = await store.read(partial(_commit.read_cursor, adapter=config.name))
        async with open_source(
            config, environ=environ, transport=transport, breaker=breaker, mapped_types=mapping_set.record_types
        ) as source:
            send, receive = anyio.create_memory_object_stream[Page](max_buffer_size=1)
            async with anyio.create_task_group() as group:
                group.start_soon(_produce, source, cursor, send)
                group.start_soon(
                    partial(
                        _consume,
                        receive,
                        source,
                        config=config,
                        store=store,
                        mapping_set=mapping_set,
                        report=report,
                        progress=progress,
                        cursor_types=cursor_types,
                    )
                )
            if isinstance(source, FhirApiSource):
                if source.failures:  # the other types were read to the end; these stopped early
                    report.error = "; ".join(str(failure) for failure in source.failures)
                if source.fetch_plan is not None:
                    report.offered_not_mapped = dict(source.fetch_plan.offered_not_mapped)
    except* BcconnectError as group_error:
        report.error = "; ".join(str(exc) for exc in group_error.exceptions)
    finally:
        report.duration_seconds = time.perf_counter() - started
        limits = config.thresholds
        report.judge(
            max_patients_quarantined=limits.max_patients_quarantined,
            max_quarantine_rate=limits.max_quarantine_rate,
            max_held_rate=limits.max_held_rate,
        )
        with anyio.CancelScope(shield=True):
            await store.write(partial(_runs.finish_run, run_id=run_id, report=report))
    metrics.INGEST_SYNCS.labels(adapter=config.name, result=report.status.lower()).inc()
    log_event = log.info if report.status == "OK" else log.warning
    log_event("sync_finished", **{k: v for k, v in report.as_dict().items() if k != "adapter"})
    structlog.contextvars.reset_contextvars(**bound)
    return report


async def sync_adapters(
    configs: Sequence[AdapterConfig],
    *,
    settings: Settings,
    store: Store,
    environ: Mapping[str, str] | None = None,
    progress: ProgressCallback | None = None,
) -> list[SyncReport]:
    """One pass of every given adapter, concurrently; each report says how its adapter fared."""
    reports: dict[str, SyncReport] = {}
    mappings_dir = settings.resolve(settings.paths.mappings_dir)

    async def one(config: AdapterConfig) -> None:
        try:
            mapping_set = load_mapping_set(mappings_dir / config.mapping_set)
        except BcconnectError as exc:
            reports[config.name] = SyncReport(adapter=config.name, error=str(exc))
            return
        reports[config.name] = await sync_adapter(
            resolve_adapter(config, settings),
            store=store,
            mapping_set=mapping_set,
            environ=environ,
            progress=progress,
        )

    async with anyio.create_task_group() as group:
        for config in configs:
            group.start_soon(one, config)
    return [reports[c.name] for c in configs]
