"""The ``fhir_api`` source: incremental ``_lastUpdated`` paging, deletes from ``_history``, id sweeps."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from bcconnect.adapters._fhir_cursor import (
    FhirCursor,
    TypeState,
    format_instant,
    http_date_instant,
    minus,
    parse_instant,
)
from bcconnect.adapters._http import FetchStats, SourceHttp
from bcconnect.adapters._types import Page, RawRecord, RawReject
from bcconnect.config import AdapterConfig
from bcconnect.errors import CircuitOpen, SourceError, SourceProtocolError, SourceUnavailable

log = structlog.get_logger()

#: the types the sandbox contract serves; reference targets first so a first load lands them early
DEFAULT_RESOURCE_TYPES: tuple[str, ...] = (
    "Organization",
    "Practitioner",
    "Patient",
    "Encounter",
    "EpisodeOfCare",
    "Condition",
    "Observation",
    "DiagnosticReport",
    "Procedure",
    "MedicationRequest",
    "AllergyIntolerance",
    "ServiceRequest",
    "Appointment",
)

#: the order types are requested in when the CapabilityStatement decides: reference targets before the
#: resources pointing at them (a Patient before its clinical records, so nothing waits as held), then the rest
_FIRST: tuple[str, ...] = (
    "Organization",
    "Location",
    "Practitioner",
    "PractitionerRole",
    "Patient",
    "RelatedPerson",
    "Device",
    "Medication",
    "Encounter",
    "EpisodeOfCare",
)

# a guard against a server whose ``next`` links never end
_MAX_PAGES = 100_000


def request_order(types: Collection[str]) -> tuple[str, ...]:
    """``types`` with reference targets first, the rest by name.

    >>> request_order({"Observation", "Patient", "Immunization", "Organization"})
    ('Organization', 'Patient', 'Immunization', 'Observation')
    """
    first = [t for t in _FIRST if t in types]
    return (*first, *sorted(t for t in types if t not in _FIRST))


@dataclass(frozen=True, slots=True)
class TypeFailure:
    """A resource type whose reading stopped: its own breaker opened or its retries ran out."""

    resource_type: str
    url: str | None
    status: int | None
    message: str

    def __str__(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no answer"
        return f"{self.resource_type} failed ({status} at {self.url or '-'}): {self.message}"


@dataclass(slots=True)
class FetchPlan:
    """What the adapter reads from a FHIR source, and why (from its CapabilityStatement and the mapping set)."""

    #: the types requested, in request order
    requested: tuple[str, ...]
    #: offered by the server (CapabilityStatement.rest.resource.type) with the search parameters it lists;
    #: empty when the server published no CapabilityStatement
    offered: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: offered types the mapping set does not map, with the server's count (None when it gave none)
    offered_not_mapped: dict[str, int | None] = field(default_factory=dict)
    #: mapped types the server does not offer (not requested)
    mapped_not_offered: tuple[str, ...] = ()
    #: how the list was chosen: "adapter file", "capability statement" or "mapping set (no CapabilityStatement)"
    basis: str = "mapping set"


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


def _obj(value: object) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (servers omit what they like)."""
    return value if isinstance(value, dict) else {}


def _tombstone(entry: dict[str, Any], resource_type: str) -> RawRecord | RawReject | None:
    """A ``DELETE`` history entry as a deleted record; ``None`` for any other entry."""
    request, response = _obj(entry.get("request")), _obj(entry.get("response"))
    if request.get("method") != "DELETE":
        return None  # updates arrive through the search; only tombstones matter here
    parts = str(request.get("url") or "").split("?")[0].strip("/").split("/")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return RawReject(orjson.dumps(entry), resource_type, "DELETE entry without Type/id in request.url")
    version = str(response.get("etag") or "").removeprefix("W/").strip('"') or None
    when = response.get("lastModified")
    return RawRecord(
        parts[0],
        f"{parts[0]}/{parts[1]}",
        orjson.dumps(entry),
        version,
        when if isinstance(when, str) else None,
        deleted=True,
    )


def _entries(bundle: object, what: str, source: str) -> tuple[dict[str, Any], list[Any]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise SourceProtocolError(f"{what}: the answer is not a FHIR Bundle", source=source)
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise SourceProtocolError(f"{what}: Bundle.entry is not a list", source=source)
    return bundle, entries


class FhirApiSource:
    """Pulls FHIR R4 resources changed since the last run, one resource type after another.

    The watermark of each type is the newest ``meta.lastUpdated`` the server reported (never our clock).
    Each run re-reads from ``watermark - overlap_seconds`` so late-committed changes are not missed; versions
    already seen (same ``id`` and ``versionId``) are skipped within a run and on the watermark itself, and
    anything else re-read is left to ingest's content-hash check.
    """

    def __init__(self, config: AdapterConfig, http: SourceHttp, *, mapped_types: Collection[str] | None = None) -> None:
        self.name = config.name
        self._config = config
        self._http = http
        self._fhir = (config.base_url or "").rstrip("/")  # the FHIR base exactly as the trust publishes it
        self._mapped = frozenset(mapped_types) if mapped_types is not None else None
        #: what this run reads (set when paging starts, or by :meth:`plan`)
        self.fetch_plan: FetchPlan | None = None
        #: resource types whose reading failed in this run; the other types went on
        self.failures: list[TypeFailure] = []

    async def plan(self) -> FetchPlan:
        """Decide which types to request: the adapter file's ``[fetch] resource_types`` when set; else every
        type the server's CapabilityStatement offers that the mapping set maps (offered types it does not map
        are counted and reported, never dropped silently); without a CapabilityStatement, what the set maps."""
        if self._config.fetch.resource_types:
            self.fetch_plan = FetchPlan(tuple(self._config.fetch.resource_types), basis="adapter file")
            return self.fetch_plan
        mapped = self._mapped if self._mapped is not None else frozenset(DEFAULT_RESOURCE_TYPES)
        offered = await self.capabilities()
        if not offered:
            self.fetch_plan = FetchPlan(request_order(mapped), basis="mapping set (no CapabilityStatement)")
            return self.fetch_plan
        not_mapped = {t: await self.count(t) for t in sorted(set(offered) - mapped)}
        self.fetch_plan = FetchPlan(
            request_order(set(offered) & mapped),
            offered=offered,
            offered_not_mapped=not_mapped,
            mapped_not_offered=tuple(sorted(mapped - set(offered))),
            basis="capability statement",
        )
        return self.fetch_plan

    async def capabilities(self) -> dict[str, tuple[str, ...]]:
        """The types the server's CapabilityStatement (``GET [base]/metadata``) offers for search, with their
        search parameters; empty when it has none (404) or it lists no types."""
        try:
            body, _ = await self._http.get_json(f"{self._fhir}/metadata")
        except SourceProtocolError as exc:
            if self._http.last_status is None:
                raise  # not an answer about /metadata (a bad URL, a protocol failure): say so
            log.warning("source_no_capability_statement", source=self.name, error=str(exc))
            return {}
        if not isinstance(body, dict) or body.get("resourceType") != "CapabilityStatement":
            log.warning("source_no_capability_statement", source=self.name, error="not a CapabilityStatement")
            return {}
        offered: dict[str, tuple[str, ...]] = {}
        for rest in body.get("rest") or ():
            if not isinstance(rest, dict) or rest.get("mode") not in (None, "server"):
                continue
            for resource in rest.get("resource") or ():
                if not isinstance(resource, dict) or not isinstance(resource.get("type"), str):
                    continue
                codes = {str(_obj(i).get("code")) for i in resource.get("interaction") or ()}
                if resource.get("interaction") and "search-type" not in codes:
                    continue  # offered for read only: nothing to page through
                params = tuple(
                    str(p["name"]) for p in resource.get("searchParam") or () if isinstance(p, dict) and p.get("name")
                )
                offered[resource["type"]] = params
        return offered

    async def count(self, resource_type: str) -> int | None:
        """How many resources of a type the server holds (``_summary=count``), or None if it will not say."""
        try:
            body, _ = await self._http.get_json(
                f"{self._fhir}/{resource_type}",
                params={"_summary": "count"},
                breaker=self._http.breaker.scoped(resource_type),
            )
        except SourceError:
            return None
        total = body.get("total") if isinstance(body, dict) else None
        return total if isinstance(total, int) and not isinstance(total, bool) else None

    @property
    def token_endpoint(self) -> str | None:
        """The OAuth2 token endpoint in use (configured or discovered), when there is one."""
        return self._http.token_endpoint

    @property
    def stats(self) -> FetchStats:
        """Request, retry and fault counters."""
        return self._http.stats

    async def pages(self, cursor: str | None) -> AsyncGenerator[Page, None]:
        """Pages of changed resources, then of deletes, type by type; each page carries the whole cursor.

        Each type has its own cursor entry and its own breaker: a type that keeps failing is recorded in
        :attr:`failures` (type, URL, HTTP status) and the next type is read; its cursor stays where its last
        committed page left it, so the next run resumes it there.
        """
        state = FhirCursor.loads(cursor, source=self.name)
        plan = self.fetch_plan or await self.plan()
        self.failures = []
        for resource_type in plan.requested:
            type_state = state.state(resource_type)
            had_deletes_since = type_state.deletes_since is not None
            try:
                async for page in self._search(resource_type, type_state, state):
                    yield page
                if had_deletes_since:
                    async for page in self._deletes(resource_type, type_state, state):
                        yield page
            except (SourceUnavailable, CircuitOpen, SourceProtocolError) as exc:
                failure = TypeFailure(resource_type, self._http.last_url, self._http.last_status, str(exc))
                self.failures.append(failure)
                log.warning("source_type_failed", source=self.name, failure=str(failure))

    async def acknowledge(self, cursor: str) -> None:
        """Nothing to do on the server: the cursor alone records progress."""

    async def list_source_ids(self, resource_type: str) -> AsyncIterator[str]:
        """Every id the source holds now for ``resource_type`` (``_elements=id``), for a reconciliation sweep.

        Ingest compares these with the store; ids the store has and the source no longer lists were deleted
        without a trace in ``_history``.
        """
        url: str | None = f"{self._fhir}/{resource_type}"
        params: dict[str, str] | None = {"_elements": "id", "_count": str(self._config.fetch.page_size)}
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            what = f"{resource_type} id sweep"
            answer = await self._http.get_json(url, params=params, breaker=self._http.breaker.scoped(resource_type))
            bundle, entries = _entries(answer[0], what, self.name)
            for entry in entries:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict) and isinstance(resource.get("id"), str):
                    yield resource["id"]
            url, params = self._follow(bundle, url), None

    def _follow(self, bundle: Mapping[str, Any], current: str) -> str | None:
        link = _next_link(bundle)
        if link is None:
            return None
        self._http.check_same_origin(link)
        if link == current:
            raise SourceProtocolError("a Bundle's next link points to itself", source=self.name)
        return link

    async def _search(self, resource_type: str, type_state: TypeState, state: FhirCursor) -> AsyncIterator[Page]:
        fetch = self._config.fetch
        params: dict[str, str] | None = {"_sort": "_lastUpdated", "_count": str(fetch.page_size)}
        assert params is not None
        if type_state.watermark is not None:
            params["_lastUpdated"] = "ge" + minus(type_state.watermark, fetch.overlap_seconds)
        seen = set(type_state.boundary)
        url: str | None = f"{self._fhir}/{resource_type}"
        before = state.dumps()
        total = 0
        for number in range(_MAX_PAGES):
            if url is None:
                break
            body, headers = await self._http.get_json(
                url, params=params, breaker=self._http.breaker.scoped(resource_type)
            )
            bundle, entries = _entries(body, f"{resource_type} search page {number + 1}", self.name)
            if type_state.deletes_since is None:
                # first run: deletes older than this search cannot concern anything we hold; start there
                meta = bundle.get("meta")
                server_now = meta.get("lastUpdated") if isinstance(meta, dict) else None
                server_at = parse_instant(server_now)
                type_state.deletes_since = (
                    format_instant(server_at) if server_at else http_date_instant(headers.get("Date"))
                )
            records, rejects = self._read_entries(resource_type, entries, seen, type_state)
            total += len(records)
            cursor = state.dumps()
            if records or rejects or cursor != before:
                yield Page(tuple(records), tuple(rejects), cursor)
                before = cursor
            url, params = self._follow(bundle, url), None
        log.info("source_type_read", source=self.name, resource_type=resource_type, records=total)

    def _read_entries(
        self, resource_type: str, entries: list[Any], seen: set[str], type_state: TypeState
    ) -> tuple[list[RawRecord], list[RawReject]]:
        records: list[RawRecord] = []
        rejects: list[RawReject] = []
        for index, entry in enumerate(entries, start=1):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(entry, dict) and _obj(entry.get("search")).get("mode") == "outcome":
                log.warning("source_search_outcome", source=self.name, resource_type=resource_type)
                continue
            reason = None
            if not isinstance(resource, dict):
                reason = f"entry {index} has no resource"
            elif not isinstance(resource.get("resourceType"), str):
                reason = f"entry {index} has no resource.resourceType"
            elif not isinstance(resource.get("id"), str) or not resource["id"]:
                reason = f"entry {index} has no resource.id"
            if reason is not None or not isinstance(resource, dict):
                rejects.append(RawReject(orjson.dumps(entry), resource_type, reason or "no resource"))
                continue
            meta = _obj(resource.get("meta"))
            version = meta.get("versionId") if isinstance(meta.get("versionId"), str) else None
            last_updated = meta.get("lastUpdated") if isinstance(meta.get("lastUpdated"), str) else None
            rtype, rid = resource["resourceType"], resource["id"]
            key = f"{rid}/{version}" if version is not None else None
            if key is not None and key in seen:
                continue  # the same version again: it moved to a later page while we paged
            if key is not None:
                seen.add(key)
                if rtype == resource_type:
                    type_state.observe(key, last_updated)
            records.append(RawRecord(rtype, f"{rtype}/{rid}", orjson.dumps(resource), version, last_updated))
        return records, rejects

    async def _deletes(self, resource_type: str, type_state: TypeState, state: FhirCursor) -> AsyncIterator[Page]:
        assert type_state.deletes_since is not None
        since = type_state.deletes_since
        params: dict[str, str] | None = {
            "_since": minus(since, self._config.fetch.overlap_seconds),
            "_count": str(self._config.fetch.page_size),
        }
        url: str | None = f"{self._fhir}/{resource_type}/_history"
        newest: str = since
        for number in range(_MAX_PAGES):
            if url is None:
                break
            body, _ = await self._http.get_json(url, params=params, breaker=self._http.breaker.scoped(resource_type))
            bundle, entries = _entries(body, f"{resource_type} history page {number + 1}", self.name)
            records: list[RawRecord] = []
            rejects: list[RawReject] = []
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                when = _obj(entry.get("response")).get("lastModified")
                when = when or _obj(_obj(entry.get("resource")).get("meta")).get("lastUpdated")
                when_at, newest_at = parse_instant(when), parse_instant(newest)
                if when_at is not None and (newest_at is None or when_at > newest_at):
                    newest = format_instant(when_at)
                item = _tombstone(entry, resource_type)
                if isinstance(item, RawRecord):
                    records.append(item)
                elif isinstance(item, RawReject):
                    rejects.append(item)
            url, params = self._follow(bundle, url), None
            if url is None:
                # move the delete watermark only once the whole history window has been read
                type_state.deletes_since = newest
            if records or rejects or url is None:
                yield Page(tuple(records), tuple(rejects), state.dumps())
