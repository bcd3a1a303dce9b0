"""The store: versioned FHIR resources, search indexes, raw landing, cursors and quarantine.

::

    async with open_store("sqlite:///data/bcconnect.db") as store:     # or postgresql://…; migrates
        counts = await store.write(lambda tx: put_resources(tx, writes))
        current = await store.read(lambda tx: read_current(tx, "Patient", "p1"))

Repository functions take a :class:`Tx`, so a caller can combine several in one transaction (the ingest
pipeline commits a page's resources and its cursor together). Each write transaction that changes anything
takes the next logical time ``t``; versions record the ``t`` that created and superseded them, so searches can
be repeated at an earlier ``t`` (stable paging while ingest writes)::

    seen = Visibility.everything()    # system work; a caller's comes from bcconnect.security.Screen
    page = await store.read(lambda tx: search(tx, parse_search("Observation", params), visibility=seen))  # page.t
    more = await store.read(lambda tx: search(tx, query, at=page.t, offset=page.offset + 50, visibility=seen))
    page = await store.read(lambda tx: everything(tx, EverythingQuery("p1", types=("Observation",)), visibility=seen))

Tables (``migrations/0001_store.*.sql``): ``resource_versions`` (every version, body as served),
``resources`` (the current version of each resource, with its source and compartment Patient id), one index
table per parameter type (``idx_token`` keyed by hashes, ``idx_string``, ``idx_date`` as ``[low, high)``
ranges, ``idx_reference``, ``idx_quantity``, ``idx_uri``), ``patient_compartment``, ``raw_records``,
``cursors``, ``quarantine``, ``reference_alias`` (ids matched as one resource: a person's Patients).
"""

from bcconnect.store._alias import (
    ALIAS_FAMILY,
    AliasSnapshot,
    alias_closure,
    alias_members,
    canonical_ids,
    drop_aliases,
    set_aliases,
    use_alias_snapshot,
)
from bcconnect.store._changes import (
    ChangedResource,
    changed_current,
    changed_since,
    current_in_compartments,
    feed_horizon,
)
from bcconnect.store._counters import bump_change_counter, change_counters
from bcconnect.store._export import (
    ExportRow,
    SensitiveRows,
    canonical_line,
    export_ndjson,
    export_owned_rows,
    export_rows,
    export_rows_by_id,
    sensitive_rows,
)
from bcconnect.store._freshness import (
    SourceFreshness,
    is_stale,
    mark_synced,
    replica_lag_seconds,
    source_freshness,
)
from bcconnect.store._landing import (
    LandedRecord,
    RawRecordLike,
    cursor_updated_at,
    get_cursor,
    land_raw,
    landed_by_key,
    landed_records,
    set_cursor,
    update_cursor,
)
from bcconnect.store._listing import iter_current, resource_types
from bcconnect.store._migrate import MigrationStatus
from bcconnect.store._quarantine import (
    QuarantineEntry,
    QuarantineGroup,
    QuarantineRecord,
    add_quarantine,
    count_open_quarantine,
    get_quarantine,
    list_quarantine,
    mark_replayed,
    open_quarantine_for_keys,
    quarantine_groups,
    resolve_quarantine,
)
from bcconnect.store._resources import (
    ResourceWrite,
    StoredResource,
    WriteCounts,
    content_hash,
    current_ids,
    current_t,
    delete_resource,
    history,
    lock_clock,
    put_resources,
    read_current,
    read_version,
)
from bcconnect.store._same_fact import (
    FactKeyer,
    KeyedRecord,
    RecordKey,
    fill_fact_keys,
    person_record_keys,
    person_records,
    versions_by_key,
)
from bcconnect.store._search import (
    EverythingQuery,
    SearchPage,
    counters_and_tokens,
    current_ids_with_token,
    everything,
    everything_of,
    read_currents,
    search,
    visible_versions,
)
from bcconnect.store._source_versions import source_record_versions
from bcconnect.store._store import PoolStats, Store, database_size_bytes, open_store
from bcconnect.store._tx import Dialect, Tx, update_rows, upsert_rows
from bcconnect.store._visibility import Visibility

__all__ = [
    "ALIAS_FAMILY",
    "AliasSnapshot",
    "ChangedResource",
    "Dialect",
    "EverythingQuery",
    "ExportRow",
    "FactKeyer",
    "KeyedRecord",
    "LandedRecord",
    "MigrationStatus",
    "PoolStats",
    "QuarantineEntry",
    "QuarantineGroup",
    "QuarantineRecord",
    "RawRecordLike",
    "RecordKey",
    "ResourceWrite",
    "SearchPage",
    "SensitiveRows",
    "SourceFreshness",
    "Store",
    "StoredResource",
    "Tx",
    "Visibility",
    "WriteCounts",
    "add_quarantine",
    "alias_closure",
    "alias_members",
    "bump_change_counter",
    "canonical_ids",
    "canonical_line",
    "change_counters",
    "changed_current",
    "changed_since",
    "content_hash",
    "count_open_quarantine",
    "counters_and_tokens",
    "current_ids",
    "current_ids_with_token",
    "current_in_compartments",
    "current_t",
    "cursor_updated_at",
    "database_size_bytes",
    "delete_resource",
    "drop_aliases",
    "everything",
    "everything_of",
    "export_ndjson",
    "export_owned_rows",
    "export_rows",
    "export_rows_by_id",
    "feed_horizon",
    "fill_fact_keys",
    "get_cursor",
    "get_quarantine",
    "history",
    "is_stale",
    "iter_current",
    "land_raw",
    "landed_by_key",
    "landed_records",
    "list_quarantine",
    "lock_clock",
    "mark_replayed",
    "mark_synced",
    "open_quarantine_for_keys",
    "open_store",
    "person_record_keys",
    "person_records",
    "put_resources",
    "quarantine_groups",
    "read_current",
    "read_currents",
    "read_version",
    "replica_lag_seconds",
    "resolve_quarantine",
    "resource_types",
    "search",
    "sensitive_rows",
    "set_aliases",
    "set_cursor",
    "source_freshness",
    "source_record_versions",
    "update_cursor",
    "update_rows",
    "upsert_rows",
    "use_alias_snapshot",
    "versions_by_key",
    "visible_versions",
]
