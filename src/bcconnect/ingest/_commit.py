"""The transactional half of a page: everything below runs inside ONE store transaction.

Raw landing, resources (with their index rows), deletions, quarantine entries, identity links and the cursor
that resumes after the page are written together, so a crash at any point leaves either all of a page or none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from bcconnect.fhir.compartment import patient_compartment
from bcconnect.identity import link_patients
from bcconnect.ingest._ordering import record_source_times, source_order, stored_source_times
from bcconnect.ingest._prepare import Landed, Outcome, PreparedPage, PreparedRecord, QuarantineEntry
from bcconnect.ingest._report import PageCounts
from bcconnect.mapping import MappingSet
from bcconnect.security import forget_objection_origin, record_objection_from_resource
from bcconnect.store import (
    QuarantineEntry as StoredQuarantineEntry,
)
from bcconnect.store import (
    ResourceWrite,
    Tx,
    add_quarantine,
    delete_resource,
    get_cursor,
    land_raw,
    landed_by_key,
    put_resources,
    set_cursor,
)


def read_cursor(tx: Tx, *, adapter: str) -> str | None:
    """The cursor committed for ``adapter`` (None before its first page)."""
    return get_cursor(tx, adapter)


def landed_state(tx: Tx, *, adapter: str, source_keys: Sequence[str]) -> dict[str, Landed]:
    """What the raw landing holds for these source keys: content hash, version and deletion flag."""
    return {
        key: Landed(record.content_hash, record.version, record.deleted)
        for key, record in landed_by_key(tx, adapter, source_keys).items()
    }


def _stored_entry(entry: QuarantineEntry, *, adapter: str, mapping_set: MappingSet) -> StoredQuarantineEntry:
    return StoredQuarantineEntry(
        adapter=adapter,
        source_key=entry.source_key or "",
        record_type=entry.record_type,
        stage=entry.stage,
        reason=entry.reason,
        message=entry.message,
        payload=entry.payload,
        details=entry.details,
        mapping_id=mapping_set.id,
        mapping_version=mapping_set.version,
    )


def commit_page(
    tx: Tx,
    *,
    prepared: PreparedPage,
    adapter: str,
    ods_code: str,
    mapping_set: MappingSet,
    received_at: str,
) -> PageCounts:
    """Write one prepared page and its cursor; returns the page's reconciliation counts."""
    del received_at  # carried by the mapped resources' meta; kept in the signature for callers
    to_land = [p.record for p in prepared.records if p.outcome is not Outcome.UNCHANGED]
    land_raw(tx, adapter, to_land)
    written = write_mapped(tx, prepared.records, adapter=adapter, ods_code=ods_code)
    for p in prepared.records:  # a delivery older than what the resources hold changes nothing
        if p.record.source_key in written.stale_records and p.outcome in (Outcome.NEW, Outcome.CHANGED):
            p.outcome = Outcome.UNCHANGED
    deleted = 0
    for p in prepared.records:
        for resource_type, resource_id in p.deletes:
            deleted += delete_resource(tx, resource_type, resource_id) is not None
            if resource_type in ("Consent", "Flag"):  # what a deleted record said about objection goes too
                forget_objection_origin(tx, f"{resource_type}/{resource_id}")
    quarantined = [p.quarantine for p in prepared.records if p.quarantine is not None]
    for entry in [*quarantined, *prepared.rejects]:
        add_quarantine(tx, _stored_entry(entry, adapter=adapter, mapping_set=mapping_set))
    if prepared.cursor:
        set_cursor(tx, adapter, prepared.cursor)
    tally: Mapping[Outcome, int] = _tally(prepared)
    return PageCounts(
        fetched=prepared.fetched,
        new=tally.get(Outcome.NEW, 0),
        changed=tally.get(Outcome.CHANGED, 0),
        unchanged=tally.get(Outcome.UNCHANGED, 0) + prepared.duplicates,
        quarantined=tally.get(Outcome.QUARANTINED, 0) + len(prepared.rejects),
        deleted=deleted,
        resources_written=written.resources,
    )


@dataclass(frozen=True, slots=True)
class Written:
    """What :func:`write_mapped` stored: resources given to the store, and records that were all stale."""

    resources: int
    stale_records: frozenset[str]


def write_mapped(tx: Tx, prepared: Sequence[PreparedRecord], *, adapter: str, ods_code: str) -> Written:
    """Store the mapped resources of these records (with index rows), link their source Patients to persons
    and update the objection register from their Consents and Flags — all in the caller's transaction.

    A resource last written from a newer source record is left alone (an out-of-order delivery); a record
    all of whose resources are left alone is reported stale.
    """
    times = {id(p): source_order(p.record.last_updated, p.record.source_key) for p in prepared}
    keys = [(r["resourceType"], r["id"]) for p in prepared if times[id(p)] for r in p.resources]
    stored = stored_source_times(tx, keys) if keys else {}
    resources: list[dict[str, Any]] = []
    guarded: list[tuple[str, str, str]] = []
    stale: set[str] = set()
    for p in prepared:
        when = times[id(p)]
        kept = [r for r in p.resources if when is None or stored.get((r["resourceType"], r["id"]), "") <= when]
        if p.resources and not kept:
            stale.add(p.record.source_key)
        resources += kept
        if when is not None:
            guarded += [(r["resourceType"], r["id"], when) for r in kept]
    writes = [
        ResourceWrite(
            resource_type=resource["resourceType"],
            id=resource["id"],
            body=orjson.dumps(resource),
            source=adapter,
            compartment=patient_compartment(resource),
        )
        for resource in resources
    ]
    # Identity and the objection register touch only their own tables, so they go first: on PostgreSQL
    # put_resources takes the store's logical-clock row lock, held to commit, and every writer waits for it.
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    if patients:
        link_patients(tx, patients, ods_code=ods_code)
    for resource in resources:
        if resource["resourceType"] in ("Consent", "Flag"):
            record_objection_from_resource(tx, resource)
    put_resources(tx, writes)
    if guarded:
        record_source_times(tx, guarded)
    return Written(len(writes), frozenset(stale))


def _tally(prepared: PreparedPage) -> dict[Outcome, int]:
    counts: dict[Outcome, int] = {}
    for p in prepared.records:
        counts[p.outcome] = counts.get(p.outcome, 0) + 1
    return counts
