"""The values an adapter hands to ingest: raw records, rejects, pages, and the Source protocol."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record exactly as the source sent it, with the source's own key, version and timestamp."""

    #: ``"Patient"`` (fhir_api), ``"patient"`` (json_api entity) or ``"ADT^A01"`` (hl7v2 MSH-9)
    record_type: str
    #: stable key in the source: ``"Patient/123"``, ``"patient/P000123"``, ``"RBK|<MSH-10>"``
    source_key: str
    #: the bytes as received (FHIR: the entry's resource; HL7: the ER7 message)
    payload: bytes
    #: ``meta.versionId``, the feed's sequence number, or ``None``
    version: str | None
    #: the source's own timestamp (never our clock)
    last_updated: str | None
    #: a tombstone reported by the source
    deleted: bool = False

    @property
    def content_hash(self) -> str:
        """SHA-256 of the payload, hex: lets ingest skip records it has already landed unchanged."""
        return hashlib.sha256(self.payload).hexdigest()


@dataclass(frozen=True, slots=True)
class RawReject:
    """Something in a page that is not even a record (an entry without id, an unreadable file)."""

    payload: bytes
    record_type: str
    reason: str


@dataclass(frozen=True, slots=True)
class Page:
    """Records and rejects from one step of a source, and the cursor that resumes after them."""

    records: tuple[RawRecord, ...]
    rejects: tuple[RawReject, ...]
    #: opaque (JSON text for the API kinds); resuming with it continues after this page
    cursor: str


@runtime_checkable
class Source(Protocol):
    """A pull source: pages of raw records, and an acknowledgement once a page is committed."""

    name: str

    def pages(self, cursor: str | None) -> AsyncIterator[Page]:
        """Pages from ``cursor`` (``None``: the beginning) until the source has nothing newer."""
        ...

    async def acknowledge(self, cursor: str) -> None:
        """Called after the page with this cursor was committed (file drop: move files away)."""
        ...


@dataclass(frozen=True, slots=True)
class MllpDelivery:
    """What the MLLP listener hands its sink: exactly one of a record or a reject."""

    record: RawRecord | None = None
    reject: RawReject | None = None
