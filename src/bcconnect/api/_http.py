"""The framework-free request and response the router works with (after medplum's fhir-router)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, decoded: the path below the FHIR base, query pairs in order, lower-case headers."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    #: the FHIR base URL links and fullUrls are built on (no trailing slash)
    base_url: str
    #: the client's address, for the audit trail
    client: str | None = None
    #: the body of a POST (only ``$match`` takes one)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """A header by (case-insensitive) name."""
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        """The first value of a query parameter."""
        return next((v for k, v in self.query if k == name), None)


@dataclass(slots=True)
class Response:
    """What a handler returns: status, FHIR JSON bytes and extra headers; ``patients`` feeds the audit hook."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Patient ids whose data the response carries
    patients: frozenset[str] = frozenset()
    #: True when ``body`` is a FHIR resource that _pretty may re-indent
    fhir: bool = True
    #: a large body sent in chunks as they are read (``body`` is then empty; set ``content-length`` and
    #: ``content-type`` in ``headers``): memory stays flat whatever the size
    stream: Callable[[], AsyncIterator[bytes]] | None = None


#: what a handler wants the request's AuditEvent to say beyond the defaults (how many resources a file held);
#: handler and audit hook run in the request's one task, so a context variable carries it between them
AUDIT_DETAIL: ContextVar[str | None] = ContextVar("bcconnect_audit_detail", default=None)


def note_audit_detail(text: str) -> None:
    """Say what this request did, for its AuditEvent (e.g. ``file Observation-1.ndjson: 1200 resources``)."""
    AUDIT_DETAIL.set(text)
