"""The view: what the API may ask for, in FHIR terms, with the caller's :class:`AccessContext`.

For now a pass-through to the store (source-level resources as stored). The identity & view layer will
extend this class to golden patients, person-level expansion and filters; the API depends only on these
method signatures and on stored JSON bytes coming back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bcconnect.errors import InvalidRequest, ResourceGone, ResourceNotFound
from bcconnect.search import ParamType, SearchParam, SearchQuery, date_range, parse_search, registry
from bcconnect.security import (
    DEFAULT_POLICY,
    SensitivityPolicy,
    screen_one,
    screen_page,
    screen_resources,
)
from bcconnect.store import (
    EverythingQuery,
    SearchPage,
    Store,
    StoredResource,
    everything,
    history,
    read_current,
    read_version,
    search,
)
from bcconnect.view._context import AccessContext


@dataclass(frozen=True, slots=True)
class TypeCapability:
    """What can be asked of one resource type."""

    resource_type: str
    search_params: tuple[SearchParam, ...]
    includes: tuple[str, ...]
    revincludes: tuple[str, ...]
    operations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SearchResult:
    """A page of search results and the parsed query that produced it."""

    query: SearchQuery
    page: SearchPage


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Versions newest first; ``has_more`` when another page exists."""

    versions: list[StoredResource]
    has_more: bool


class View:
    """Read access to the record for the API (every method takes the caller's :class:`AccessContext`)."""

    def __init__(
        self,
        store: Store,
        *,
        default_count: int = 50,
        max_count: int = 1000,
        sensitivity: SensitivityPolicy = DEFAULT_POLICY,
    ) -> None:
        self.store = store
        self.default_count = default_count
        self.max_count = max_count
        #: which security labels make a resource sensitive (``[security] sensitive_labels``)
        self.sensitivity = sensitivity

    async def _screened(self, access: AccessContext, found: StoredResource, missing: str) -> StoredResource:
        # objection, sensitivity, restriction and patient confinement; withheld looks exactly like absent
        shown = await self.store.read(
            lambda tx: screen_one(tx, found, access, policy=self.sensitivity, confine_to=access.patient)
        )
        if shown is None:
            raise ResourceNotFound(missing)
        return shown

    def _check_type(self, resource_type: str) -> None:
        if resource_type not in registry().by_type:
            raise ResourceNotFound(f"resource type {resource_type!r} is not served here")

    async def read(self, access: AccessContext, resource_type: str, resource_id: str) -> StoredResource:
        """The current version; ResourceNotFound if absent, ResourceGone if deleted."""
        self._check_type(resource_type)
        found = await self.store.read(lambda tx: read_current(tx, resource_type, resource_id))
        if found is None:
            raise ResourceNotFound(f"{resource_type}/{resource_id} is not known")
        if found.deleted:
            raise ResourceGone(f"{resource_type}/{resource_id} was deleted (version {found.version})")
        return await self._screened(access, found, f"{resource_type}/{resource_id} is not known")

    async def vread(self, access: AccessContext, resource_type: str, resource_id: str, version: str) -> StoredResource:
        """One version; ResourceNotFound if there is no such version, ResourceGone for a deletion."""
        self._check_type(resource_type)
        if not version.isdigit():
            raise ResourceNotFound(f"{resource_type}/{resource_id} has no version {version!r}")
        found = await self.store.read(lambda tx: read_version(tx, resource_type, resource_id, int(version)))
        if found is None:
            raise ResourceNotFound(f"{resource_type}/{resource_id} has no version {version}")
        if found.deleted:
            raise ResourceGone(f"{resource_type}/{resource_id} version {version} is a deletion")
        return await self._screened(access, found, f"{resource_type}/{resource_id} has no version {version}")

    async def history(
        self,
        access: AccessContext,
        resource_type: str,
        resource_id: str,
        *,
        count: int | None = None,
        offset: int = 0,
        since: str | None = None,
    ) -> HistoryPage:
        """Versions of one resource, newest first (deletions included, with no body)."""
        self._check_type(resource_type)
        size = min(count or self.default_count, self.max_count)
        since_instant = _instant(since, "_since") if since else None
        versions = await self.store.read(
            lambda tx: history(tx, resource_type, resource_id, since=since_instant, count=size + 1, offset=offset)
        )
        if not versions and offset == 0 and since is None:
            raise ResourceNotFound(f"{resource_type}/{resource_id} is not known")
        shown = await self.store.read(
            lambda tx: (
                screen_resources(
                    tx, versions[:size], access, policy=self.sensitivity, confine_to=access.patient
                ).resources
            )
        )
        if versions and not shown and not any(v.body is None for v in versions[:size]):
            raise ResourceNotFound(f"{resource_type}/{resource_id} is not known")
        return HistoryPage(shown, len(versions) > size)

    async def search(
        self,
        access: AccessContext,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        *,
        lenient: bool = False,
        at: int | None = None,
        offset: int = 0,
    ) -> SearchResult:
        """One page of a search; ``at``/``offset`` come back from the previous page's link."""
        self._check_type(resource_type)
        query = parse_search(
            resource_type, params, default_count=self.default_count, max_count=self.max_count, lenient=lenient
        )
        page = await self.store.read(
            lambda tx: screen_page(
                tx, search(tx, query, at=at, offset=offset), access, policy=self.sensitivity, confine_to=access.patient
            )
        )
        return SearchResult(query, page)

    async def everything(
        self,
        access: AccessContext,
        patient_id: str,
        params: Sequence[tuple[str, str]],
        *,
        at: int | None = None,
        offset: int = 0,
    ) -> SearchPage:
        """``Patient/{id}/$everything`` with ``_since``, ``_type``, ``start``, ``end``, ``_count``."""
        await self.read(access, "Patient", patient_id)
        query = _everything_query(patient_id, params, self.default_count, self.max_count)
        return await self.store.read(
            lambda tx: screen_page(
                tx,
                everything(tx, query, at=at, offset=offset),
                access,
                policy=self.sensitivity,
                confine_to=access.patient,
            )
        )

    async def capabilities(self, access: AccessContext) -> tuple[TypeCapability, ...]:
        """What each served resource type supports (the CapabilityStatement is built from this)."""
        reg = registry()
        out = []
        for rtype in reg.resource_types:
            params = tuple(p for _, p in sorted(reg.params(rtype).items()))
            includes = tuple(f"{rtype}:{p.code}" for p in params if p.type is ParamType.REFERENCE)
            revincludes = tuple(
                f"{other}:{p.code}"
                for other in reg.resource_types
                for p in reg.by_type[other].values()
                if p.type is ParamType.REFERENCE and rtype in p.targets
            )
            operations = ("everything",) if rtype == "Patient" else ()
            out.append(TypeCapability(rtype, params, includes, revincludes, operations))
        return tuple(out)


EVERYTHING_PARAMS = frozenset({"_since", "_type", "start", "end", "_count"})


def _instant(text: str, name: str) -> str:
    """A FHIR instant/date as the store's UTC millisecond text (for comparison with ``last_updated``)."""
    found = date_range(text)
    if found is None:
        raise InvalidRequest(f"{name}: {text!r} is not a FHIR instant", expression=[name])
    moment = datetime.fromtimestamp(found[0] / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _everything_query(
    patient_id: str, params: Sequence[tuple[str, str]], default_count: int, max_count: int
) -> EverythingQuery:
    values: dict[str, str] = {}
    for name, value in params:
        if name in ("_format", "_pretty", "_page_token"):
            continue
        if name not in EVERYTHING_PARAMS:
            raise InvalidRequest(f"$everything does not take {name!r}", expression=[name])
        values[name] = value
    types = tuple(t.strip() for t in values.get("_type", "").split(",") if t.strip())
    unknown = [t for t in types if t not in registry().by_type]
    if unknown:
        raise InvalidRequest(f"_type: not served here: {', '.join(unknown)}", expression=["_type"])
    count_text = values.get("_count", str(default_count))
    if not count_text.isdigit():
        raise InvalidRequest(f"_count: expected a non-negative integer, got {count_text!r}", expression=["_count"])
    bounds: dict[str, int] = {}
    for name, pick in (("start", 0), ("end", 1)):
        if name in values:
            found = date_range(values[name])
            if found is None:
                raise InvalidRequest(f"{name}: {values[name]!r} is not a FHIR date", expression=[name])
            bounds[name] = found[pick]
    return EverythingQuery(
        patient_id=patient_id,
        types=types,
        since=_instant(values["_since"], "_since") if "_since" in values else None,
        start=bounds.get("start"),
        end=bounds.get("end"),
        count=min(int(count_text), max_count),
    )
