"""Re-applying mappings without asking the trust again: quarantine replay and ``remap`` of landed records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import anyio

from bcconnect.adapters import RawRecord, RawReject, hl7_record
from bcconnect.config import AdapterConfig, SourceKind
from bcconnect.errors import BcconnectError
from bcconnect.ingest._commit import write_mapped
from bcconnect.ingest._prepare import Outcome, PreparedRecord, map_record
from bcconnect.ingest._runs import utc_now
from bcconnect.ingest._sync import mapping_context_factory
from bcconnect.mapping import MappingSet
from bcconnect.store import (
    QuarantineRecord,
    Store,
    Tx,
    get_quarantine,
    land_raw,
    landed_records,
    list_quarantine,
    mark_replayed,
    open_quarantine_for_keys,
    resolve_quarantine,
)

_REMAP_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """How one replay went: resolved, or still failing and why."""

    quarantine_id: int
    resolved: bool
    message: str


async def replay_quarantined(
    quarantine_id: int,
    *,
    config: AdapterConfig,
    store: Store,
    mapping_set: MappingSet,
    payload: bytes | None = None,
) -> ReplayResult:
    """Map a quarantined record again (optionally with a corrected ``payload``); resolve it on success."""
    found: QuarantineRecord | None = await store.read(partial(get_quarantine, quarantine_id=quarantine_id))
    if found is None:
        raise BcconnectError(f"no quarantined record with id {quarantine_id}")
    entry = found.entry
    if entry.adapter != config.name:
        raise BcconnectError(f"quarantined record {quarantine_id} belongs to adapter {entry.adapter!r}")
    body = payload if payload is not None else entry.payload
    if config.kind is SourceKind.HL7V2:
        # a message that never parsed has no key yet: take it from the (repaired) message itself
        _, keyed = hl7_record(body)
        if isinstance(keyed, RawReject):
            await store.write(partial(mark_replayed, quarantine_id=quarantine_id))
            return ReplayResult(quarantine_id, False, keyed.reason)
        record = keyed
    else:
        record = RawRecord(
            record_type=entry.record_type,
            source_key=entry.source_key or f"quarantine/{quarantine_id}",
            payload=body,
            version=None,
            last_updated=None,
        )
    context = mapping_context_factory(config, utc_now())(record)
    prepared = await anyio.to_thread.run_sync(
        partial(map_record, record, Outcome.CHANGED, mapping_set=mapping_set, context=context)
    )

    def commit(tx: Tx) -> ReplayResult:
        mark_replayed(tx, quarantine_id)
        if prepared.quarantine is not None:
            return ReplayResult(quarantine_id, False, prepared.quarantine.message)
        land_raw(tx, config.name, [record])  # what was taken in stays replayable by `remap`
        written = write_mapped(tx, [prepared], adapter=config.name, ods_code=config.ods_code)
        resolve_quarantine(tx, quarantine_id)
        return ReplayResult(quarantine_id, True, f"{written.resources} resource(s) written")

    return await store.write(commit)


@dataclass(slots=True)
class RemapReport:
    """What a remap did: records read from the landing, resources written, records that failed, quarantine
    entries it resolved (their records map now), held resources it released."""

    adapter: str
    records: int = 0
    resources_written: int = 0
    failed: int = 0
    resolved: int = 0
    released: int = 0


def resolve_mapped(tx: Tx, *, adapter: str, source_keys: list[str]) -> int:
    """Resolve the open quarantine entries of records that have now been taken in; returns how many."""
    ids = open_quarantine_for_keys(tx, adapter, source_keys) if source_keys else []
    return sum(resolve_quarantine(tx, qid) for qid in ids)


@dataclass(slots=True)
class ReplayAllReport:
    """What ``quarantine replay --all`` did."""

    tried: int = 0
    resolved: int = 0
    still_failing: int = 0
    skipped: list[str] = field(default_factory=list)


async def replay_all(
    *,
    configs: dict[str, AdapterConfig],
    mapping_sets: dict[str, MappingSet],
    store: Store,
    adapter: str | None = None,
    reason: str | None = None,
) -> ReplayAllReport:
    """Replay every open quarantined record (of one adapter, or whose reason matches ``reason``) with the
    current mappings, a chunk at a time; records of adapters not configured any more are skipped."""
    report = ReplayAllReport()
    after = 0
    while True:
        chunk = await store.read(
            partial(list_quarantine, adapter=adapter, reason=reason, limit=_REMAP_CHUNK, after_id=after)
        )
        if not chunk:
            return report
        after = chunk[-1].id
        for found in chunk:
            config = configs.get(found.entry.adapter)
            if config is None:
                report.skipped.append(f"{found.id}: adapter {found.entry.adapter!r} is not configured")
                continue
            result = await replay_quarantined(
                found.id, config=config, store=store, mapping_set=mapping_sets[config.name]
            )
            report.tried += 1
            if result.resolved:
                report.resolved += 1
            else:
                report.still_failing += 1


def _landed_chunk(tx: Tx, *, adapter: str, after: str) -> list[RawRecord]:
    return [
        RawRecord(r.record_type, r.source_key, r.payload, r.version, r.last_updated)
        for r in landed_records(tx, adapter, after_key=after, limit=_REMAP_CHUNK)
    ]


async def remap_adapter(
    config: AdapterConfig,
    *,
    store: Store,
    mapping_set: MappingSet,
    progress: Callable[[str, int], None] | None = None,
) -> RemapReport:
    """Re-apply the current mapping set to every landed record of ``config`` (no call to the trust).

    Records that now fail keep their previous resources; they are counted, not quarantined again. Records
    that map now resolve their open quarantine entries, and release resources held for their Patients.
    ``progress(adapter, records_so_far)`` is called after each chunk (progress bars).
    """
    report = RemapReport(adapter=config.name)
    after = ""
    context_for = mapping_context_factory(config, utc_now())
    while True:
        records = await store.read(partial(_landed_chunk, adapter=config.name, after=after))
        if not records:
            return report
        after = records[-1].source_key
        prepared = [map_record(r, Outcome.CHANGED, mapping_set=mapping_set, context=context_for(r)) for r in records]
        good = [p for p in prepared if p.quarantine is None]
        report.records += len(records)
        report.failed += len(prepared) - len(good)
        keys = [p.record.source_key for p in good]

        def commit(tx: Tx, good: list[PreparedRecord] = good, keys: list[str] = keys) -> tuple[int, int, int]:
            written = write_mapped(tx, good, adapter=config.name, ods_code=config.ods_code)
            return written.resources, written.released, resolve_mapped(tx, adapter=config.name, source_keys=keys)

        resources, released, resolved = await store.write(commit)
        report.resources_written += resources
        report.released += released
        report.resolved += resolved
        if progress is not None:
            progress(config.name, report.records)
