"""The reconciliation sweep: deletes a source never reported reach the store anyway.

Some sources delete without a trace in their change history. The sweep lists every id the source holds now,
per resource type, and tombstones what the store holds from that adapter that the source no longer lists. The
whole listing is read before anything is deleted, so a listing that fails half-way deletes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import httpx

from bcconnect.adapters import FhirApiSource, RawRecord, open_source
from bcconnect.config import AdapterConfig, SourceKind
from bcconnect.errors import UsageError
from bcconnect.ingest._runs import utc_now
from bcconnect.ingest._sync import mapping_context_factory
from bcconnect.mapping import MappingContext, MappingSet
from bcconnect.store import Store, Tx, delete_resource, iter_current, land_raw, landed_records

_PAGE = 2000


@dataclass(slots=True)
class SweepReport:
    """Per resource type: how many ids the source lists, and how many stored resources were tombstoned."""

    adapter: str
    listed: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)


async def _stored_ids(store: Store, resource_type: str, adapter: str) -> set[str]:
    ids: set[str] = set()
    after = ""
    while True:
        batch = await store.read(
            partial(iter_current, resource_type=resource_type, after_id=after, limit=_PAGE, source=adapter)
        )
        if not batch:
            return ids
        ids.update(r.id for r in batch)
        after = batch[-1].id


def _tombstone(tx: Tx, *, adapter: str, resource_type: str, gone: set[str], keys: dict[str, str]) -> int:
    deleted = sum(delete_resource(tx, resource_type, resource_id) is not None for resource_id in sorted(gone))
    # the landing mirrors the source too, so a later re-delivery of the record counts as new again
    known = sorted(keys[i] for i in gone if i in keys)
    land_raw(tx, adapter, [RawRecord(resource_type, key, b"", None, None, deleted=True) for key in known])
    return deleted


async def sweep_deletes(
    config: AdapterConfig,
    *,
    store: Store,
    mapping_set: MappingSet,
    environ: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SweepReport:
    """Tombstone every resource of a FHIR API adapter whose source record the trust no longer lists."""
    if config.kind is not SourceKind.FHIR_API:
        raise UsageError(f"adapter {config.name!r} is {config.kind.value}: only fhir_api sources can be swept")
    report = SweepReport(adapter=config.name)
    context_for = mapping_context_factory(config, utc_now())
    async with open_source(
        config, environ=environ, transport=transport, mapped_types=mapping_set.record_types
    ) as source:
        assert isinstance(source, FhirApiSource)  # open_source returns the kind the config names
        for resource_type in (await source.plan()).requested:  # the types a sync reads, no others
            live: set[str] = set()
            async for source_id in source.list_source_ids(resource_type):
                live.add(f"{resource_type}/{source_id}")
            report.listed[resource_type] = len(live)
            expected: set[str] = set()
            for key in live:
                probe = RawRecord(resource_type, key, b"", None, None, deleted=True)
                expected.update(
                    i
                    for t, i in mapping_set.resource_ids_for(resource_type, key, context_for(probe))
                    if t == resource_type
                )
            stored = await _stored_ids(store, resource_type, config.name)
            gone = stored - expected
            if not gone:
                report.deleted[resource_type] = 0
                continue
            # the source key each gone id was minted from (ids derive from keys), to mark the landing too
            landed = await store.read(partial(_keys_for, adapter=config.name, resource_type=resource_type))
            keys = {i: key for key in landed for i in _ids(mapping_set, resource_type, key, context_for) if i in gone}
            report.deleted[resource_type] = await store.write(
                partial(_tombstone, adapter=config.name, resource_type=resource_type, gone=gone, keys=keys)
            )
    return report


def _ids(
    mapping_set: MappingSet, resource_type: str, key: str, context_for: Callable[[RawRecord], MappingContext]
) -> list[str]:
    probe = RawRecord(resource_type, key, b"", None, None, deleted=True)
    return [i for t, i in mapping_set.resource_ids_for(resource_type, key, context_for(probe)) if t == resource_type]


def _keys_for(tx: Tx, *, adapter: str, resource_type: str) -> list[str]:
    keys: list[str] = []
    while batch := landed_records(
        tx, adapter, after_key=keys[-1] if keys else "", limit=_PAGE, record_type=resource_type
    ):
        keys += [record.source_key for record in batch]
    return keys
