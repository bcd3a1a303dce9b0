"""Writing one export: NDJSON files per resource type, read page by page through the view's screened reads.

The screen (scopes, objection, sensitivity, restriction) is the view's own, with the requester's
:class:`~bcconnect.view.AccessContext`, at the snapshot the job was kicked off at: whole types and a Group's
members come from the view's batch read for exports (``View.bulk_page``/``bulk_members``: the same screen,
applied to whole pages, proven equal to a single read's), ``_typeFilter``/``_since`` queries from
``View.search``. What this module adds is *selection*, never screening: whose resources the export is about (a
Group's members, or everyone but the people under the national data opt-out) and one Patient per person (the
golden Patient; a trust's source Patient records are not exported, so a person is counted once downstream).

Memory stays flat: one page (``[bulk] page_rows`` resources, or a chunk of members' rows) is held at a time and
written straight to a file with one write; a file is closed at ``max_file_bytes`` and the next one started."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import orjson

from bcconnect.bulk._elements import subset_line
from bcconnect.bulk._jobs import JobFile
from bcconnect.bulk._request import ExportRequest, Level
from bcconnect.errors import RequestError
from bcconnect.logging import get_logger
from bcconnect.store import StoredResource, canonical_ids
from bcconnect.view import AccessContext, BulkItem, View, provenance_target_types, registry

log = get_logger(__name__)

#: types that are never in a patient's compartment: left out of Patient- and Group-level exports
NON_PATIENT_TYPES = frozenset({"Organization", "Location", "Practitioner", "PractitionerRole", "Medication"})
#: composed on read, never stored: exported beside the resources it describes, one per exported version
PROVENANCE = "Provenance"


class ExportStopped(Exception):
    """The job was cancelled (or another worker took it over) while it was being written."""


@dataclass(frozen=True, slots=True)
class Selection:
    """Whose resources an export carries (persons are golden Patient ids)."""

    #: a Group's members; None: everyone
    members: frozenset[str] | None = None
    #: persons left out whatever else applies (the national data opt-out)
    excluded: frozenset[str] = frozenset()
    #: only resources that belong to a person (Patient and Group level)
    patients_only: bool = False


@dataclass(slots=True)
class TypeResult:
    """What one resource type produced."""

    files: list[JobFile] = field(default_factory=list)
    count: int = 0
    #: Provenance written for the type's resources
    provenance: int = 0
    errors: list[bytes] = field(default_factory=list)


#: ``on_file(file)``: a file is complete on disk (record it); ``on_page(type, written)``: a page was written,
#: return False to stop (cancelled)
OnFile = Callable[[JobFile], Awaitable[None]]
OnPage = Callable[[str, int], Awaitable[bool]]


def wants_provenance(request: ExportRequest, access: AccessContext) -> bool:
    """Whether the export carries Provenance: asked for (``_type``) or every type, and the caller reads it."""
    readable = access.readable_types
    asked = not request.types or PROVENANCE in request.types
    return asked and PROVENANCE in registry().resource_types and (readable is None or PROVENANCE in readable)


def writes_type(request: ExportRequest, resource_type: str) -> bool:
    """Whether a type read by the export is written itself (not only read for the Provenance of its resources)."""
    return not request.types or resource_type in request.types


def export_types(request: ExportRequest, access: AccessContext, available: Sequence[str]) -> list[str]:
    """The types this export reads: those with data, that the caller may read, asked for (``_type``), or whose
    resources' Provenance is asked for (``_type=Provenance`` alone: every type's)."""
    readable = access.readable_types
    # only types the endpoint serves (the store may hold others, e.g. Consent records behind the objection register)
    served = frozenset(registry().resource_types)
    provenance = wants_provenance(request, access)
    targets = frozenset(provenance_target_types()) if provenance else frozenset()
    asked = [t for t in request.types if t != PROVENANCE]
    candidates = asked or sorted(available)  # with other types asked, the Provenance of those only
    wanted = [t for t in candidates if t in available and t in served and (writes_type(request, t) or t in targets)]
    if request.level is not Level.SYSTEM:
        wanted = [t for t in wanted if t not in NON_PATIENT_TYPES]
    return [t for t in wanted if readable is None or t in readable]


def _line(body: bytes) -> bytes:
    # stored bodies are compact JSON; one with a raw newline inside a string cannot be, but an NDJSON line must
    # never be split, so anything unexpected is re-serialised
    return (body if b"\n" not in body else orjson.dumps(orjson.loads(body))) + b"\n"


def _lines(bodies: Sequence[bytes], keep: frozenset[str] | None, resource_type: str) -> list[bytes]:
    """The NDJSON lines of served resources, subsetted to ``keep`` (``_elements``) when given."""
    lines = [_line(b) for b in bodies]
    return lines if keep is None else [subset_line(line, keep, resource_type) for line in lines]


def outcome_line(
    message: str, *, code: str = "processing", expression: str | None = None, severity: str = "error"
) -> bytes:
    """One OperationOutcome as an NDJSON line (the manifest's ``error`` files hold these)."""
    issue: dict[str, object] = {"severity": severity, "code": code, "diagnostics": message}
    if expression:
        issue["expression"] = [expression]
    return orjson.dumps({"resourceType": "OperationOutcome", "issue": [issue]}) + b"\n"


def provenance_stem(target_type: str) -> str:
    """The name stem of the files holding the Provenance of one type's resources (``Provenance-Observation``):
    written with that type, so a resumed job keeps or rewrites them with it."""
    return f"{PROVENANCE}-{target_type}"


class _Files:
    """NDJSON files of one type, ``<stem>-<n>.ndjson`` (the stem is the type, unless given), each closed past
    ``max_bytes``."""

    def __init__(
        self,
        directory: Path,
        resource_type: str,
        max_bytes: int,
        on_file: OnFile,
        kind: str = "output",
        stem: str | None = None,
    ) -> None:
        self.directory = directory
        self.resource_type = resource_type
        self.stem = stem or resource_type
        self.max_bytes = max_bytes
        self.on_file = on_file
        self.kind = kind
        self.seq = 0
        self.handle: anyio.AsyncFile[bytes] | None = None
        self.lines = 0
        self.bytes = 0
        self.files: list[JobFile] = []

    def _name(self) -> str:
        stem = self.stem if self.kind == "output" else f"{self.stem}-errors"
        return f"{stem}-{self.seq}.ndjson"

    async def write(self, lines: Sequence[bytes]) -> None:
        """Append ``lines``: one write per file touched (a page is written in one call, not line by line)."""
        pending: list[bytes] = []
        for line in lines:
            pending.append(line)
            self.lines += 1
            self.bytes += len(line)
            if self.bytes >= self.max_bytes:
                await self._flush(pending)
                pending = []
                await self.close()
        await self._flush(pending)

    async def _flush(self, pending: list[bytes]) -> None:
        if not pending:
            return
        if self.handle is None:
            self.seq += 1
            self.handle = await anyio.open_file(self.directory / self._name(), "wb")
        await self.handle.write(b"".join(pending))

    async def close(self) -> None:
        if self.handle is None:
            return
        await self.handle.aclose()
        self.handle = None
        done = JobFile(self._name(), self.resource_type, self.kind, self.seq, self.lines, self.bytes)
        self.lines = self.bytes = 0
        self.files.append(done)
        await self.on_file(done)

    async def discard(self) -> None:
        if self.handle is not None:
            await self.handle.aclose()
            self.handle = None


async def _persons(view: View, resources: Sequence[StoredResource]) -> dict[str, str]:
    """``owner id → person`` for the Patient records the resources belong to (a golden id maps to itself)."""
    owners = {r.id if r.resource_type == "Patient" else r.compartment for r in resources}
    ids = [o for o in owners if o]
    canon = await view.store.read(lambda tx: canonical_ids(tx, "Patient", ids)) if ids else {}
    return {i: canon.get(i, i) for i in ids}


def _selected(resource: StoredResource, persons: dict[str, str], selection: Selection) -> bool:
    if resource.body is None:
        return False
    owner = resource.id if resource.resource_type == "Patient" else resource.compartment
    if owner is None:
        return not selection.patients_only
    person = persons.get(owner, owner)
    if resource.resource_type == "Patient" and (person != resource.id or b'"replaced-by"' in resource.body):
        # one Patient per person: the golden Patient (a trust's record, or a golden id retired by a merge, is not)
        return False
    if person in selection.excluded:
        return False
    return selection.members is None or person in selection.members


def _chosen(item: BulkItem, selection: Selection, chunk: frozenset[str] | None) -> bool:
    """Whether a row the view served belongs in the export (the same rules as :func:`_selected`)."""
    resource = item.resource
    if resource.body is None:
        return False
    if item.person is None:
        return not selection.patients_only
    if resource.resource_type == "Patient" and (item.person != resource.id or b'"replaced-by"' in resource.body):
        return False
    if item.person in selection.excluded:
        return False
    if chunk is not None and item.person not in chunk:
        return False  # a resource of two members is written once: with the chunk of the member who owns it
    return selection.members is None or item.person in selection.members


#: Group members read per query: a Group export reads its members' rows only
MEMBER_CHUNK = 200
#: rows per page of a whole-type read (one read transaction and one file write each), unless configured
PAGE_ROWS = 5000


def _member_param(resource_type: str) -> str | None:
    """The search parameter that selects a type's resources by person (None: the type is scanned)."""
    if resource_type == "Patient":
        return "_id"
    return "patient" if "patient" in registry().params(resource_type) else None


def _queries(
    request: ExportRequest, resource_type: str, selection: Selection, page_size: int
) -> list[tuple[list[tuple[str, str]], frozenset[str] | None]]:
    """The searches that together read a filtered type: one per ``_typeFilter`` of the type (OR-ed: a resource
    matching several is written once), times one per chunk of a Group's members (with the chunk)."""
    base: list[tuple[str, str]] = [("_count", str(page_size))]
    if request.since:
        base.append(("_lastUpdated", f"gt{request.since}"))
    filters = request.filters_for(resource_type) or ((),)
    by = _member_param(resource_type)
    out: list[tuple[list[tuple[str, str]], frozenset[str] | None]] = []
    for query in filters:
        params = [*base, *query]
        if selection.members is None or by is None:
            out.append((params, None))
            continue
        members = sorted(selection.members - selection.excluded)
        chunks = [members[i : i + MEMBER_CHUNK] for i in range(0, len(members), MEMBER_CHUNK)]
        out += [([*params, (by, ",".join(chunk))], frozenset(chunk)) for chunk in chunks]
    return out


async def write_type(
    view: View,
    access: AccessContext,
    request: ExportRequest,
    resource_type: str,
    *,
    at: int,
    directory: Path,
    selection: Selection,
    max_file_bytes: int,
    on_file: OnFile,
    on_page: OnPage,
    page_rows: int = PAGE_ROWS,
    with_provenance: bool = False,
) -> TypeResult:
    """Write every selected resource of one type.

    Without ``_typeFilter``/``_since`` the type is read by the view's bulk read (index ranges, the screen
    applied to whole pages, stored bytes written as they are): a Group's members a chunk at a time through the
    patient compartment, or the whole type in id order. With them, each filter runs as the view's own search
    (a query the view refuses becomes an error-file line).

    ``with_provenance``: the Provenance of every resource written (or, when the type itself is not asked for,
    that would be written) goes to ``Provenance-<type>-<n>.ndjson``, composed by the view for exactly those
    served resources: what the screen withheld has no Provenance either.
    """
    sink = _Sink(
        request,
        resource_type,
        _Files(directory, resource_type, max_file_bytes, on_file),
        _Files(directory, PROVENANCE, max_file_bytes, on_file, stem=provenance_stem(resource_type))
        if with_provenance
        else None,
        view,
        access,
    )
    result = sink.result
    try:
        if request.filters_for(resource_type) or request.since:
            await _write_searched(view, access, request, resource_type, at, selection, sink, on_page)
        else:
            await _write_read(view, access, resource_type, at, selection, sink, on_page, page_rows)
        await sink.close()
    except BaseException:
        await sink.discard()
        raise
    result.files = sink.files()
    return result


class _Sink:
    """Where one type's served resources go: its own files (when asked for), their Provenance's files (when
    asked for), each subsetted by ``_elements``."""

    def __init__(
        self,
        request: ExportRequest,
        resource_type: str,
        files: _Files,
        provenance: _Files | None,
        view: View,
        access: AccessContext,
    ) -> None:
        self.resource_type = resource_type
        self.own = files if writes_type(request, resource_type) else None
        self.provenance = provenance
        self.keep = request.kept_elements(resource_type)
        self.keep_provenance = request.kept_elements(PROVENANCE)
        self.view = view
        self.access = access
        self.result = TypeResult()

    async def write(self, served: Sequence[StoredResource]) -> None:
        """Write one page of served, selected resources (and their Provenance)."""
        if self.own is not None:
            lines = _lines([r.body for r in served if r.body is not None], self.keep, self.resource_type)
            await self.own.write(lines)
            self.result.count += len(lines)
        if self.provenance is not None and served:
            composed = await self.view.bulk_provenance(self.access, served)
            lines = _lines([p.body for p in composed if p.body is not None], self.keep_provenance, PROVENANCE)
            await self.provenance.write(lines)
            self.result.provenance += len(lines)

    @property
    def written(self) -> int:
        return self.result.count + self.result.provenance

    async def close(self) -> None:
        for files in (self.own, self.provenance):
            if files is not None:
                await files.close()

    async def discard(self) -> None:
        for files in (self.own, self.provenance):
            if files is not None:
                await files.discard()

    def files(self) -> list[JobFile]:
        return [f for files in (self.own, self.provenance) if files is not None for f in files.files]


async def _write_read(
    view: View,
    access: AccessContext,
    resource_type: str,
    at: int,
    selection: Selection,
    sink: _Sink,
    on_page: OnPage,
    page_rows: int,
) -> None:
    sensitive = await view.bulk_sensitive(access, resource_type)

    async def write(items: Sequence[BulkItem], chunk: frozenset[str] | None) -> None:
        await sink.write([i.resource for i in items if i.resource.body is not None and _chosen(i, selection, chunk)])
        if not await on_page(resource_type, sink.written):
            raise ExportStopped

    if selection.members is not None and _member_param(resource_type) is not None:
        members = sorted(selection.members - selection.excluded)
        for start in range(0, len(members), MEMBER_CHUNK):
            chunk = members[start : start + MEMBER_CHUNK]
            items = await view.bulk_members(access, resource_type, chunk, at=at, sensitive=sensitive)
            await write(items, frozenset(chunk))
        return
    after: str | None = ""
    while after is not None:
        items, after = await view.bulk_page(
            access, resource_type, at=at, sensitive=sensitive, after_id=after, limit=page_rows
        )
        await write(items, None)


async def _write_searched(
    view: View,
    access: AccessContext,
    request: ExportRequest,
    resource_type: str,
    at: int,
    selection: Selection,
    sink: _Sink,
    on_page: OnPage,
) -> None:
    several = len(request.filters_for(resource_type)) > 1
    result = sink.result
    #: ids already written by an earlier filter of the type (only kept when there are several)
    written: set[str] = set()
    for params, chunk in _queries(request, resource_type, selection, view.max_count):
        after: str | None = None
        while True:
            try:
                found = await view.search(access, resource_type, params, at=at, after=after)
            except RequestError as exc:
                # checked at kick-off, so only a change on our side (a parameter withdrawn) lands here
                result.errors.append(outcome_line(f"{resource_type}: {exc}", code="invalid", expression="_typeFilter"))
                break
            page = found.page
            persons = await _persons(view, page.matches)
            chosen = [
                r
                for r in page.matches
                if r.body is not None
                and _selected(r, persons, selection)
                and (chunk is None or _owner_person(r, persons) in chunk)
                and not (several and r.id in written)
            ]
            if several:
                written.update(r.id for r in chosen)
            await sink.write(chosen)
            if not await on_page(resource_type, sink.written):
                raise ExportStopped
            if not page.has_more or page.after is None:
                break
            after = page.after


def _owner_person(resource: StoredResource, persons: dict[str, str]) -> str | None:
    owner = resource.id if resource.resource_type == "Patient" else resource.compartment
    return None if owner is None else persons.get(owner, owner)


async def write_errors(directory: Path, lines: Sequence[bytes], on_file: OnFile) -> list[JobFile]:
    """The error file (OperationOutcome NDJSON), when there is anything to say."""
    if not lines:
        return []
    files = _Files(directory, "OperationOutcome", 1 << 62, on_file, kind="error")
    await files.write(lines)
    await files.close()
    return files.files
