"""The transactional half of a page: everything below runs inside ONE store transaction.

Raw landing, resources (with their index rows), deletions, quarantine entries, identity links and the cursor
that resumes after the page are written together, so a crash at any point leaves either all of a page or none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bcconnect.adapters import merge_cursor_types
from bcconnect.fhir.compartment import patient_compartment
from bcconnect.identity import link_patients, settle_persons
from bcconnect.ingest._held import drop_held, hold, take_held
from bcconnect.ingest._ordering import record_source_times, source_order, stored_source_times
from bcconnect.ingest._prepare import Landed, Outcome, PreparedPage, PreparedRecord, QuarantineEntry
from bcconnect.ingest._report import PageCounts
from bcconnect.mapping import MappingSet
from bcconnect.security import forget_objection_origin, label_sensitive, record_objection_from_resource
from bcconnect.store import (
    QuarantineEntry as StoredQuarantineEntry,
)
from bcconnect.store import (
    ResourceWrite,
    Tx,
    add_quarantine,
    current_ids,
    delete_resource,
    get_cursor,
    land_raw,
    landed_by_key,
    lock_clock,
    open_quarantine_for_keys,
    put_resources,
    resolve_quarantine,
    set_cursor,
    update_cursor,
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
    cursor_types: frozenset[str] | None = None,
) -> PageCounts:
    """Write one prepared page and its cursor; returns the page's reconciliation counts.

    ``cursor_types``: this worker reads only these resource types of a FHIR source (a lease per type), so only
    their entries of the adapter's cursor are replaced — the other types belong to other workers.
    """
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
            drop_held(tx, resource_type, resource_id)
            if resource_type in ("Consent", "Flag"):  # what a deleted record said about objection goes too
                forget_objection_origin(tx, f"{resource_type}/{resource_id}")
    # a record that maps now closes what an earlier delivery of it left in quarantine
    taken = [p.record.source_key for p in prepared.records if p.outcome in (Outcome.NEW, Outcome.CHANGED)]
    for qid in open_quarantine_for_keys(tx, adapter, taken) if taken else ():
        resolve_quarantine(tx, qid)
    quarantined = [p.quarantine for p in prepared.records if p.quarantine is not None]
    for entry in [*quarantined, *prepared.rejects]:
        add_quarantine(tx, _stored_entry(entry, adapter=adapter, mapping_set=mapping_set))
    if prepared.cursor and cursor_types is not None:
        page_cursor = prepared.cursor
        update_cursor(tx, adapter, lambda stored: merge_cursor_types(stored, page_cursor, cursor_types, source=adapter))
    elif prepared.cursor:
        set_cursor(tx, adapter, prepared.cursor)
    tally: Mapping[Outcome, int] = _tally(prepared)
    patient_records = sum(
        1 for e in [*quarantined, *prepared.rejects] if "Patient" in mapping_set.produces(e.record_type)
    )
    return PageCounts(
        fetched=prepared.fetched,
        new=tally.get(Outcome.NEW, 0),
        changed=tally.get(Outcome.CHANGED, 0),
        unchanged=tally.get(Outcome.UNCHANGED, 0) + prepared.duplicates,
        quarantined=tally.get(Outcome.QUARANTINED, 0) + len(prepared.rejects),
        deleted=deleted,
        resources_written=written.resources,
        quarantined_patients=patient_records,
        held=written.held,
        released=written.released,
    )


@dataclass(frozen=True, slots=True)
class Written:
    """What :func:`write_mapped` stored: resources given to the store, and records that were all stale."""

    resources: int
    stale_records: frozenset[str]
    #: resources kept back because their Patient is neither in the store nor in this batch
    held: int = 0
    #: resources held earlier whose Patient this batch wrote, now in the store
    released: int = 0


def write_mapped(tx: Tx, prepared: Sequence[PreparedRecord], *, adapter: str, ods_code: str) -> Written:
    """Store the mapped resources of these records (with index rows), link their source Patients to persons
    and update the objection register from their Consents and Flags — all in the caller's transaction.

    A resource last written from a newer source record is left alone (an out-of-order delivery); a record
    all of whose resources are left alone is reported stale. A resource whose Patient is neither stored nor
    written here is held (see ``_held``); resources held for a Patient written here are released with it.
    """
    times = {id(p): source_order(p.record.last_updated, p.record.source_key, p.record.version) for p in prepared}
    keys = [(r["resourceType"], r["id"]) for p in prepared if times[id(p)] for r in p.resources]
    stored = stored_source_times(tx, keys) if keys else {}
    resources: list[dict[str, Any]] = []
    origin: dict[int, str] = {}
    guarded: list[tuple[str, str, str]] = []
    stale: set[str] = set()
    # within one batch the newest source record of a resource wins too (a page may carry an older message after a
    # newer one): it counts as what is stored when the older one is weighed
    for p in prepared:
        when = times[id(p)]
        if when is not None:
            for r in p.resources:
                key = (r["resourceType"], r["id"])
                stored[key] = max(stored.get(key, ""), when)
    for p in prepared:
        when = times[id(p)]
        kept = [r for r in p.resources if when is None or stored.get((r["resourceType"], r["id"]), "") <= when]
        if p.resources and not kept:
            stale.add(p.record.source_key)
        resources += kept
        origin.update((id(r), p.record.source_key) for r in kept)
        if when is not None:
            guarded += [(r["resourceType"], r["id"], when) for r in kept]
    # Identity, the objection register and the source times touch only their own tables, so they go before any
    # clock lock: on PostgreSQL the store's logical-clock row lock is held to commit and every writer waits for
    # it — what runs before it runs concurrently with the other adapters' pages. (Patients are never held, so
    # the Patients to link are known before holding and releasing.)
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    if patients:
        link_patients(tx, patients, ods_code=ods_code, settle=False)
    if guarded:
        record_source_times(tx, guarded)
    resources, held = _hold_orphans(tx, resources, origin, adapter=adapter)
    _record_objections(tx, resources)  # a held Consent or Flag counts once it is released with its Patient
    patient_ids = [r["id"] for r in patients]
    if patient_ids:
        # releasing happens under the clock lock, as holding does (below): of a Patient and a resource held for it
        # in two concurrent transactions, whichever commits second sees the other (workers leasing one adapter's
        # types write Patients and their Observations at the same time)
        lock_clock(tx)
    released = [h.body for h in take_held(tx, patient_ids)]
    _record_objections(tx, released)
    resources += released
    # sensitivity rules (packaged ValueSets) label by code and by clinical context within the batch
    label_sensitive(resources)
    writes = [
        ResourceWrite(
            resource_type=resource["resourceType"],
            id=resource["id"],
            body=b"",  # the store reads the parsed form; serialising it here would be thrown away
            source=adapter,
            compartment=patient_compartment(resource),
            parsed=resource,
        )
        for resource in resources
    ]
    put_resources(tx, writes)
    # golden Patients are composed from the source Patients just written (ids stable, aliases current)
    settle_persons(tx, patient_ids=[p["id"] for p in patients])
    return Written(len(writes), frozenset(stale), held, len(released))


def _record_objections(tx: Tx, resources: Sequence[dict[str, Any]]) -> None:
    """Update the objection register from the Consents and Flags among ``resources``."""
    for resource in resources:
        if resource["resourceType"] in ("Consent", "Flag"):
            record_objection_from_resource(tx, resource)


def _hold_orphans(
    tx: Tx, resources: list[dict[str, Any]], origin: Mapping[int, str], *, adapter: str
) -> tuple[list[dict[str, Any]], int]:
    """Split off the resources whose Patient is neither written in this batch nor current in the store."""
    here = {r["id"] for r in resources if r["resourceType"] == "Patient"}
    wanted = {
        id(r): pid
        for r in resources
        if r["resourceType"] != "Patient" and (pid := patient_compartment(r)) is not None and pid not in here
    }
    if not wanted:
        return resources, 0
    present = current_ids(tx, "Patient", wanted.values())
    orphans = [(r, wanted[id(r)]) for r in resources if id(r) in wanted and wanted[id(r)] not in present]
    if orphans and tx.dialect == "postgresql":
        # decide under the clock lock, which a transaction writing Patients holds to commit: a Patient committed
        # meanwhile is seen now, and one committed later releases what is held here (see write_mapped)
        lock_clock(tx)
        present = current_ids(tx, "Patient", [pid for _, pid in orphans])
        orphans = [(r, pid) for r, pid in orphans if pid not in present]
    if not orphans:
        return resources, 0
    hold(tx, [(r, adapter, origin.get(id(r), ""), pid) for r, pid in orphans])
    held_ids = {id(r) for r, _ in orphans}
    return [r for r in resources if id(r) not in held_ids], len(orphans)


def _tally(prepared: PreparedPage) -> dict[Outcome, int]:
    counts: dict[Outcome, int] = {}
    for p in prepared.records:
        counts[p.outcome] = counts.get(p.outcome, 0) + 1
    return counts
