"""Turn one page of raw records into what the commit writes: classify, de-duplicate, map, validate.

This is the CPU-bound half of a page (it runs in a worker thread, outside any transaction). It decides for each
record whether it is new, changed, unchanged (same content, a duplicate delivery or an out-of-order older
version) or quarantined, and maps the new and changed ones with the adapter's mapping set.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bcconnect.adapters import RawRecord, RawReject
from bcconnect.errors import ReasonCode, RecordError
from bcconnect.mapping import MappingContext, MappingSet


class Outcome(enum.Enum):
    """What a record turned out to be, relative to what was landed before."""

    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    QUARANTINED = "quarantined"


@dataclass(frozen=True, slots=True)
class Landed:
    """What the raw landing already holds for one source key."""

    content_hash: str
    version: str | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """A record that could not be taken in, with everything needed to explain and replay it."""

    record_type: str
    source_key: str | None
    payload: bytes
    stage: str
    reason: ReasonCode
    message: str
    details: tuple[str, ...] = ()


@dataclass(slots=True)
class PreparedRecord:
    """One record's outcome and, when it is to be written, its mapped resources or the ids it deletes."""

    record: RawRecord
    outcome: Outcome
    resources: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)
    quarantine: QuarantineEntry | None = None


@dataclass(slots=True)
class PreparedPage:
    """A page ready to commit, with its cursor."""

    records: list[PreparedRecord]
    rejects: list[QuarantineEntry]
    cursor: str | None
    duplicates: int = 0

    @property
    def fetched(self) -> int:
        """Records and rejects the source delivered in this page (duplicates included)."""
        return len(self.records) + len(self.rejects) + self.duplicates


def _as_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def is_older(incoming: RawRecord, landed: Landed) -> bool:
    """True when the incoming record is an older version than the landed one (an out-of-order delivery).

    Only comparable versions decide (FHIR ``versionId`` and feed sequence numbers are integers); otherwise the
    newest delivery wins.

    >>> is_older(RawRecord("Patient", "Patient/1", b"{}", "2", None), Landed("h", "3", False))
    True
    >>> is_older(RawRecord("Patient", "Patient/1", b"{}", "4", None), Landed("h", "3", False))
    False
    """
    new, old = _as_int(incoming.version), _as_int(landed.version)
    return new is not None and old is not None and new < old


def deduplicate(records: Sequence[RawRecord]) -> tuple[list[RawRecord], int]:
    """Keep one delivery per source key (the newest version; else the last), and count the others."""
    chosen: dict[str, RawRecord] = {}
    for record in records:
        previous = chosen.get(record.source_key)
        if previous is not None:
            prev_v, new_v = _as_int(previous.version), _as_int(record.version)
            if prev_v is not None and new_v is not None and new_v < prev_v:
                continue
        chosen[record.source_key] = record
    return list(chosen.values()), len(records) - len(chosen)


def prepare_page(
    records: Sequence[RawRecord],
    rejects: Sequence[RawReject],
    cursor: str | None,
    *,
    landed: Mapping[str, Landed],
    mapping_set: MappingSet,
    context_for: Any,
) -> PreparedPage:
    """Classify and map one page. ``landed`` maps source keys to what the raw landing holds now;
    ``context_for(record)`` builds the MappingContext of a record."""
    unique, duplicates = deduplicate(records)
    prepared: list[PreparedRecord] = []
    for record in unique:
        before = landed.get(record.source_key)
        if before is not None and (
            (before.content_hash == record.content_hash and before.deleted == record.deleted)
            or is_older(record, before)
        ):
            prepared.append(PreparedRecord(record, Outcome.UNCHANGED))
            continue
        outcome = Outcome.NEW if before is None else Outcome.CHANGED
        prepared.append(map_record(record, outcome, mapping_set=mapping_set, context=context_for(record)))
    quarantined_rejects = [
        QuarantineEntry(
            record_type=reject.record_type,
            source_key=None,
            payload=reject.payload,
            stage="parse",
            reason=ReasonCode.PARSE,
            message=reject.reason,
        )
        for reject in rejects
    ]
    return PreparedPage(prepared, quarantined_rejects, cursor, duplicates)


def map_record(
    record: RawRecord, outcome: Outcome, *, mapping_set: MappingSet, context: MappingContext
) -> PreparedRecord:
    """Map one record (or find what its tombstone deletes); a RecordError becomes a quarantine entry."""
    try:
        if record.deleted:
            deletes = mapping_set.resource_ids_for(record.record_type, record.source_key, context)
            return PreparedRecord(record, outcome, deletes=list(deletes))
        result = mapping_set.map(record.record_type, record.payload, context=context)
        # what this record produced before but not now (a withdrawn objection's Consent) is deleted
        stale = mapping_set.stale_ids(record.record_type, context, result)
        return PreparedRecord(record, outcome, resources=list(result.resources), deletes=stale)
    except RecordError as exc:
        entry = QuarantineEntry(
            record_type=record.record_type,
            source_key=record.source_key,
            payload=record.payload,
            stage=exc.reason.value,
            reason=exc.reason,
            message=str(exc),
            details=exc.details,
        )
        return PreparedRecord(record, Outcome.QUARANTINED, quarantine=entry)
