"""The view: what the API may ask for, in FHIR terms, with the caller's :class:`AccessContext`.

Person-centred (see :mod:`bcconnect.view._person` for the model): ``Patient/<person id>`` is the golden
Patient the patient index stores; every resource is served with its Patient references pointing at the golden
Patient (the source reference kept in an extension); any Patient id of a person (golden or a trust's record)
in ``patient=``/``subject=`` and ``$everything`` spans every trust. Screening (objection, sensitivity,
restriction) runs on the source-level resources first. The API depends only on these method signatures and on
JSON bytes coming back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from bcconnect.errors import InvalidRequest, ResourceGone, ResourceNotFound, StoreError
from bcconnect.identity import Rules, load_rules, match_patient
from bcconnect.logging import get_logger
from bcconnect.search import (
    MAX_REQUEST_INTEGER,
    ParamType,
    SearchParam,
    SearchQuery,
    date_range,
    parse_non_negative,
    parse_search,
    registry,
)
from bcconnect.security import (
    DEFAULT_POLICY,
    Screen,
    ScreenFacts,
    SensitivityPolicy,
    objecting_patient_ids,
    patient_key,
    search_audit_events,
)
from bcconnect.store import (
    ChangedResource,
    EverythingQuery,
    SearchPage,
    SensitiveRows,
    SourceFreshness,
    Store,
    StoredResource,
    Tx,
    alias_members,
    canonical_ids,
    everything,
    export_owned_rows,
    export_rows,
    export_rows_by_id,
    history,
    iter_current,
    person_records,
    read_current,
    read_currents,
    read_version,
    resource_types,
    search,
    sensitive_rows,
    source_freshness,
)
from bcconnect.view._bulk import BulkItem, bulk_items
from bcconnect.view._context import AccessContext
from bcconnect.view._match import match_bundle, parse_match_parameters
from bcconnect.view._person import (
    RecordCache,
    everything_for_person,
    is_golden,
    key_facts,
    person_centred,
    person_id_of,
    person_record,
    present_golden,
    present_goldens,
    same_person_ids,
)
from bcconnect.view._population import PopulationPage, population_changes, population_records
from bcconnect.view._provenance import INCLUDES as PROVENANCE_INCLUDES
from bcconnect.view._provenance import NOT_OFFERED_ON_PROVENANCE, PROVENANCE, REVINCLUDE, SEARCH_PARAMS
from bcconnect.view._provenance_read import (
    ProvenanceContext,
    provenance_of,
    read_provenance,
    revinclude_provenance,
    search_provenance,
    versioned_targets,
    without_provenance_revincludes,
)

log = get_logger(__name__)


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
        rules: Rules | None = None,
        source_ods: Mapping[str, str] | None = None,
        staleness_limits: Mapping[str, float] | None = None,
    ) -> None:
        self.store = store
        self.default_count = default_count
        self.max_count = max_count
        #: which security labels make a resource sensitive (``[security] sensitive_labels``)
        self.sensitivity = sensitivity
        #: identity rules: survivorship of golden Patients, staleness default
        self.rules = rules or load_rules()
        #: adapter name → trust ODS code, and adapter name → staleness limit (seconds), from adapter.toml
        self.source_ods = dict(source_ods or {})
        self.staleness_limits = dict(staleness_limits or {})
        #: a person's deduplicated record per snapshot, so the pages after the first of $everything are cheap
        self._records = RecordCache()
        #: objectors and persons kept in this process, re-read when the store's change counters move
        self._screen_facts = ScreenFacts(same_person)

    def _screen(self, tx: Tx, access: AccessContext) -> Screen:
        """The caller's screen at this snapshot: every store call below takes its visibility."""
        return Screen.build(tx, access, policy=self.sensitivity, related=same_person, facts=self._screen_facts)

    def _golden(self, tx: Tx, screen: Screen, person_id: str) -> StoredResource | None:
        stored = read_current(tx, "Patient", person_id)
        if stored is None or stored.deleted:
            return None
        # screened (and a restricted person's whereabouts redacted) as stored, then composed if need be
        shown = screen.apply([stored]).resources
        if not shown:
            return None
        return present_golden(tx, shown[0], self.rules, lambda items: screen.apply(items).resources)

    def _goldens(
        self, tx: Tx, screen: Screen, persons: Sequence[str], members: Mapping[str, Sequence[str]]
    ) -> dict[str, StoredResource]:
        """:meth:`_golden` for a page of persons at once (``members``: each one's source Patient ids): their
        golden and source Patients read in one query and screened in one, not two round trips per person."""
        stored = read_currents(tx, "Patient", [*persons, *(m for p in persons for m in members.get(p, ()))])
        readable = [s for s in stored.values() if not s.deleted and s.body is not None]
        shown = {s.id: s for s in screen.apply(readable).resources}
        out: dict[str, StoredResource] = {}
        for person in persons:
            golden = shown.get(person)
            if golden is None:
                continue  # never stored, deleted, or withheld from this caller
            sources = [stored.get(m) for m in members.get(person, ())]
            composed = present_golden(
                tx,
                golden,
                self.rules,
                lambda items: [shown[i.id] for i in items if i.id in shown],
                sources_read=sources,
            )
            if composed is not None:
                out[person] = composed
        return out

    def _present(self, tx: Tx, screen: Screen, items: list[StoredResource]) -> list[StoredResource]:
        """Golden Patients as this caller may see them (composed from the visible sources only)."""
        return present_goldens(tx, items, self.rules, lambda found: screen.apply(found).resources)

    def _provenance(self, tx: Tx, screen: Screen) -> ProvenanceContext:
        """What composing this caller's Provenance needs (their screen, their view of golden Patients)."""
        return ProvenanceContext(screen, lambda items: self._present(tx, screen, items), self.rules.version)

    def _check_type(self, resource_type: str) -> None:
        if resource_type not in registry().by_type:
            raise ResourceNotFound(f"resource type {resource_type!r} is not served here")

    def _shown(
        self,
        tx: Tx,
        screen: Screen,
        found: StoredResource | None,
        resource_type: str,
        resource_id: str,
        missing: str,
    ) -> StoredResource:
        """Screened and person-centred, inside the caller's snapshot; withheld looks exactly like absent."""
        if found is None:
            raise ResourceNotFound(missing)
        if found.deleted:
            raise ResourceGone(f"{resource_type}/{resource_id} was deleted (version {found.version})")
        # the stored row is screened (the same SQL predicate as every search), then a golden one is composed
        shown = self._present(tx, screen, screen.apply([found]).resources)
        if not shown:
            raise ResourceNotFound(missing)
        return person_centred(tx, shown)[0]

    async def read(self, access: AccessContext, resource_type: str, resource_id: str) -> StoredResource:
        """The current version; ResourceNotFound if absent, ResourceGone if deleted (one snapshot)."""
        self._check_type(resource_type)
        if resource_type == PROVENANCE:  # composed on read from the version it describes
            return await self.store.read(
                lambda tx: read_provenance(tx, self._provenance(tx, self._screen(tx, access)), resource_id)
            )

        def run(tx: Tx) -> StoredResource:
            found = read_current(tx, resource_type, resource_id)
            return self._shown(
                tx,
                self._screen(tx, access),
                found,
                resource_type,
                resource_id,
                f"{resource_type}/{resource_id} is not known",
            )

        return await self.store.read(run, short=True)

    async def vread(self, access: AccessContext, resource_type: str, resource_id: str, version: str) -> StoredResource:
        """One version; ResourceNotFound if there is no such version, ResourceGone for a deletion."""
        self._check_type(resource_type)
        # a version id is ASCII digits within a 64-bit column; anything else names no version (404, never 500)
        if not version or len(version) > 19 or not _ASCII_DIGITS.issuperset(version):
            raise ResourceNotFound(f"{resource_type}/{resource_id} has no version {version[:40]!r}")
        if int(version) > MAX_REQUEST_INTEGER:
            raise ResourceNotFound(f"{resource_type}/{resource_id} has no version {version!r}")
        missing = f"{resource_type}/{resource_id} has no version {version}"
        if resource_type == PROVENANCE:  # a composed Provenance has one version
            if version != "1":
                raise ResourceNotFound(missing)
            return await self.read(access, resource_type, resource_id)

        def run(tx: Tx) -> StoredResource:
            screen = self._screen(tx, access)
            found = read_version(tx, resource_type, resource_id, int(version))
            if found is not None and found.deleted:
                # a deletion of something the caller may not see is as absent as the rest of it
                if not screen.apply([replace(found, body=b"{}")]).resources:
                    raise ResourceNotFound(missing)
                raise ResourceGone(f"{resource_type}/{resource_id} version {version} is a deletion")
            return self._shown(tx, screen, found, resource_type, resource_id, missing)

        return await self.store.read(run, short=True)

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
        missing = f"{resource_type}/{resource_id} is not known"
        if resource_type == PROVENANCE:  # one version, composed from the version it describes
            only = await self.read(access, resource_type, resource_id)
            shown = offset == 0 and (since_instant is None or only.last_updated >= since_instant)
            return HistoryPage([only] if shown else [], False)

        def run(tx: Tx) -> HistoryPage:
            screen = self._screen(tx, access)
            versions = history(
                tx,
                resource_type,
                resource_id,
                since=since_instant,
                count=size + 1,
                offset=offset,
                visibility=screen.visibility,
            )
            if not versions and offset == 0 and since is None:
                raise ResourceNotFound(missing)
            shown = self._present(tx, screen, screen.apply(versions[:size], expected_clean=True).resources)
            if versions and not any(v.body is not None for v in shown):
                # only deletions left (the rest withheld): as absent as an unknown resource
                raise ResourceNotFound(missing)
            return HistoryPage(person_centred(tx, shown), len(versions) > size)

        return await self.store.read(run, short=True)

    async def search(
        self,
        access: AccessContext,
        resource_type: str,
        params: Sequence[tuple[str, str]],
        *,
        lenient: bool = False,
        at: int | None = None,
        offset: int = 0,
        after: str | None = None,
        base_url: str | None = None,
    ) -> SearchResult:
        """One page of a search; ``at``/``offset``/``after`` come back from the previous page's link.

        ``base_url`` is the endpoint's own base: references under it are local ones.
        """
        self._check_type(resource_type)

        dropped: list[tuple[str, str]] = []
        if resource_type == PROVENANCE:
            params = versioned_targets(params)  # a versioned target names one Provenance
            if lenient:  # what Provenance does not offer is ignored, as any unknown parameter would be
                dropped = [(k, v) for k, v in params if k.split(":")[0] in NOT_OFFERED_ON_PROVENANCE]
                params = [p for p in params if p not in dropped]

        def run(tx: Tx) -> SearchResult:
            # any Patient id of a person in a reference parameter matches all of them (the store's aliases)
            query = parse_search(
                resource_type,
                params,
                default_count=self.default_count,
                max_count=self.max_count,
                lenient=lenient,
                local_base=base_url,
            )
            screen = self._screen(tx, access)
            if resource_type == PROVENANCE:
                if dropped:
                    query = replace(
                        query,
                        ignored=(*query.ignored, *(k for k, _ in dropped)),
                        ignored_params=(*query.ignored_params, *dropped),
                    )
                found = search_provenance(tx, self._provenance(tx, screen), query, at=at, offset=offset, after=after)
                return SearchResult(query, found)
            # Provenance is composed here, never stored: the store runs the query without it
            stored_query = without_provenance_revincludes(query)
            # screened inside the store's SQL (counts, filters, sorts, includes), then redacted and composed
            page = screen.page(
                search(tx, stored_query, at=at, offset=offset, after=after, visibility=screen.visibility)
            )
            page = replace(
                page,
                matches=self._present(tx, screen, page.matches),
                included=self._present(tx, screen, page.included),
            )
            provenance = revinclude_provenance(tx, self._provenance(tx, screen), query, page)
            centred = replace(
                page,
                matches=person_centred(tx, page.matches),
                included=[*person_centred(tx, page.included), *provenance],
            )
            return SearchResult(query, centred)

        # one snapshot for the whole page: expansion, search, screening and re-pointing agree with each other;
        # a page is index-driven and bounded by _count, so it is a short read (a long one goes to a worker thread)
        return await self.store.read(run, short=True)

    async def everything(
        self,
        access: AccessContext,
        patient_id: str,
        params: Sequence[tuple[str, str]],
        *,
        at: int | None = None,
        offset: int = 0,
        after: str | None = None,
    ) -> SearchPage:
        """``Patient/{id}/$everything`` with ``_since``, ``_type``, ``start``, ``end``, ``_count``.

        For any Patient id of a person (its golden id or any trust's source record): the golden Patient first,
        then every source Patient's compartment, across all trusts.
        """
        await self.read(access, "Patient", patient_id)  # 404/410 as for a read; screened like one
        query = _everything_query(patient_id, params, self.default_count, self.max_count)

        unkeyed: list[int] = []

        def gather(tx: Tx) -> SearchPage:
            screen = self._screen(tx, access)
            person = person_id_of(tx, patient_id)
            if person is not None:
                golden = self._golden(tx, screen, person)
                shown = screen.visibility.allows_type("Patient")
                wanted = golden if shown and (not query.types or "Patient" in query.types) else None
                if golden is not None and wanted is not None:
                    wanted = person_centred(tx, [golden])[0]
                # the golden Patient is element 0 of the person's ordered results, so page offsets stay exact
                found = everything_for_person(
                    tx,
                    person,
                    query,
                    at=at,
                    offset=offset,
                    golden=wanted,
                    priority=self.rules.source_priority,
                    after=after,
                    cache=self._records,
                    visibility=screen.visibility,
                    unkeyed=unkeyed,
                )
                head = [m for m in found.matches if m is wanted]
                rest = screen.page(replace(found, matches=[m for m in found.matches if m is not wanted]))
                return replace(rest, matches=[*head, *person_centred(tx, rest.matches)])
            page = screen.page(everything(tx, query, at=at, offset=offset, after=after, visibility=screen.visibility))
            return replace(page, matches=person_centred(tx, page.matches))

        found = await self.store.read(gather)
        await self._keep_fact_keys(unkeyed)
        return found

    async def records(
        self, access: AccessContext, patient_ids: Sequence[str], *, types: Sequence[str] = ()
    ) -> dict[str, list[StoredResource]]:
        """Many persons' whole cross-trust records at once, each as its ``$everything`` gives it (golden Patient
        first, one fact from two trusts once, person-centred), limited to ``types`` (every type when empty).

        One snapshot, one screen and one read of every record for all of them (a worklist's context, not a
        loop of ``$everything`` calls). Keyed by the id asked for; an id that is no visible Patient is left out.
        """
        for rtype in types:
            self._check_type(rtype)
        query = EverythingQuery(patient_id="", types=tuple(types), count=0)
        unkeyed: list[int] = []

        def run(tx: Tx) -> dict[str, list[StoredResource]]:
            screen = self._screen(tx, access)
            wanted = list(dict.fromkeys(patient_ids))
            person_of = canonical_ids(tx, "Patient", wanted)
            persons = list(dict.fromkeys(person_of.values()))
            members = {p: [m for m in ms if m != p] for p, ms in alias_members(tx, "Patient", persons).items()}
            owner = {m: p for p, ms in members.items() for m in ms}
            _, found = person_records(tx, query, list(owner), visibility=screen.visibility)
            rows: dict[str, list[Any]] = {p: [] for p in persons}
            for row in found:
                if row.resource.compartment in owner:
                    rows[owner[row.resource.compartment]].append(row)
            if not screen.visibility.allows_type("Patient"):
                return {}  # as for $everything: no Patient may be read, so no person either
            with_patient = not types or "Patient" in types
            goldens = self._goldens(tx, screen, persons, members)
            out: dict[str, list[StoredResource]] = {}
            for person in persons:
                golden = goldens.get(person)
                if golden is None or golden.deleted:
                    continue  # withheld (or retired): as absent as an unknown Patient
                record = person_record(person, rows[person], self.rules.source_priority, unkeyed)
                shown = screen.apply(record, expected_clean=True).resources  # screened in the SQL; redacted here
                out[person] = [golden, *shown] if with_patient else shown
            served = person_centred(tx, [r for items in out.values() for r in items])
            position = 0
            for person, items in out.items():
                out[person] = served[position : position + len(items)]
                position += len(items)
            return {asked: out[person_of[asked]] for asked in wanted if person_of.get(asked) in out}

        found = await self.store.read(run)
        await self._keep_fact_keys(unkeyed)
        return found

    async def _keep_fact_keys(self, vids: list[int]) -> None:
        """Keep the same-fact keys a read computed, so the next read of those persons parses none of it.

        Best effort: the answer was already right without them. A read replica cannot be written (the primary's
        readers keep them, and replication brings them here); a failed write only means computing them again.
        """
        if not vids or self.store.is_replica:
            return
        try:
            await self.store.write(lambda tx: key_facts(tx, vids))
        except StoreError as exc:
            log.warning("same_fact_keys_not_kept", versions=len(vids), error=str(exc))

    async def export_batch(self, resource_type: str, *, after_id: str = "", raw: bool = False) -> list[StoredResource]:
        """Up to 1000 current resources of a type after ``after_id`` (id order), for ``bcconnect export``.

        The view (default): golden Patients and source Patients with their ``refer`` links, every reference
        re-pointed as served; a golden id retired by a merge (only a ``replaced-by`` link, no data) is left
        out. ``raw``: the source records exactly as stored, and no golden Patients. An operator's export: no
        caller screening (it is not a FHIR read), but persons in the objection register are left out (the
        command is audited by the CLI).
        """

        def run(tx: Tx) -> tuple[list[StoredResource], str]:
            batch = iter_current(tx, resource_type, after_id=after_id, limit=1000)
            last = batch[-1].id if batch else ""
            # a person who objects to the shared record is never exported, in either form
            objecting = objecting_patient_ids(tx, same_person)
            batch = [
                r
                for r in batch
                if r.compartment not in objecting and not (r.resource_type == "Patient" and r.id in objecting)
            ]
            if raw:
                return [r for r in batch if not is_golden(r)], last
            kept = [r for r in batch if not (is_golden(r) and r.body is not None and b'"replaced-by"' in r.body)]
            return person_centred(tx, kept), last

        found, last = await self.store.read(run)
        if last and not found:
            return await self.export_batch(resource_type, after_id=last, raw=raw)
        return found

    async def population_changes(
        self, resource_type: str, *, after: tuple[int, str] = (0, ""), until_t: int | None = None, limit: int = 1000
    ) -> PopulationPage:
        """One page of the rows of ``resource_type`` (Patient, Condition, Encounter) changed after the cursor
        ``after`` = ``(t, id)``, as stored, people in the objection register left out; for a read model kept
        beside the record (an operator's population use: no caller screening, like ``export_batch``)."""
        return await self.store.read(
            lambda tx: population_changes(tx, resource_type, after=after, until_t=until_t, limit=limit)
        )

    async def population_records(self, patient_ids: Sequence[str]) -> list[ChangedResource]:
        """The current rows (Patient, Condition, Encounter) of these Patients and their compartments, as stored,
        objectors left out: a read model re-reads a person with it (an objection withdrawn)."""
        ids = list(patient_ids)
        return await self.store.read(lambda tx: population_records(tx, ids))

    async def bulk_sensitive(self, access: AccessContext, resource_type: str) -> SensitiveRows:
        """The rows of a type this caller's sensitivity grant withholds (once per type of a Bulk Data export)."""
        return await self.store.read(lambda tx: sensitive_rows(tx, resource_type, self._screen(tx, access).visibility))

    async def bulk_page(
        self,
        access: AccessContext,
        resource_type: str,
        *,
        at: int,
        sensitive: SensitiveRows,
        after_id: str = "",
        limit: int = 5000,
    ) -> tuple[list[BulkItem], str | None]:
        """A Bulk Data export's next page of a whole type at snapshot ``at`` (id order, after ``after_id``), as
        this caller's search would show it (see :mod:`bcconnect.view._bulk`); and where the next page starts."""
        self._check_type(resource_type)

        def run(tx: Tx) -> tuple[list[BulkItem], str | None]:
            rows, last = export_rows(tx, resource_type, at=at, after_id=after_id, limit=limit)
            return bulk_items(tx, self._screen(tx, access), rows, sensitive, self.rules), last

        return await self.store.read(run)

    async def bulk_members(
        self, access: AccessContext, resource_type: str, persons: Sequence[str], *, at: int, sensitive: SensitiveRows
    ) -> list[BulkItem]:
        """A Bulk Data export's resources of one type that belong to ``persons`` (golden Patient ids) at snapshot
        ``at``: each person's golden Patient, or what their source Patients' compartments hold."""
        self._check_type(resource_type)

        def run(tx: Tx) -> list[BulkItem]:
            if resource_type == "Patient":
                rows = export_rows_by_id(tx, "Patient", persons, at)
            else:
                members = alias_members(tx, "Patient", persons)
                owners = sorted({o for p in persons for o in (p, *members.get(p, ()))})
                rows = export_owned_rows(tx, resource_type, owners, at=at)
            return bulk_items(tx, self._screen(tx, access), rows, sensitive, self.rules)

        return await self.store.read(run)

    async def bulk_provenance(self, access: AccessContext, served: Sequence[StoredResource]) -> list[StoredResource]:
        """The Provenance of resources a Bulk Data export wrote (each already served to this caller by
        ``bulk_page``/``bulk_members``/``search``): one per version, composed and screened as
        ``_revinclude=Provenance:target`` gives them; none when the caller may not read Provenance."""
        targets = list(served)

        def run(tx: Tx) -> list[StoredResource]:
            screen = self._screen(tx, access)
            return provenance_of(tx, self._provenance(tx, screen), targets)

        return await self.store.read(run) if targets else []

    async def export_types(self) -> list[str]:
        """Every resource type with current resources (what ``bcconnect export`` writes files for)."""
        return await self.store.read(resource_types)

    async def match(self, parameters: Mapping[str, Any], access: AccessContext, *, base_url: str = "") -> bytes:
        """``Patient/$match``: golden Patients of the candidate persons, with score and match grade (Bundle)."""
        resource, count, only_certain = parse_match_parameters(parameters)

        def run(tx: Tx) -> list[tuple[Any, bytes]]:
            screen = self._screen(tx, access)
            found = []
            for candidate in match_patient(tx, resource, count=count, only_certain=only_certain, rules=self.rules):
                golden = self._golden(tx, screen, candidate.person_id)
                if golden is not None and golden.body is not None:
                    found.append((candidate, golden.body))
            return found

        return match_bundle(base_url, await self.store.read(run))

    async def audit_events(self, access: AccessContext, patient: str, *, count: int, offset: int = 0) -> list[bytes]:
        """AuditEvents about a person, newest first: ``patient`` may be any Patient id of the person (golden or a
        trust's record). A ``patient/``-confined caller sees only their own person's trail; asking about anyone
        else answers as for an unknown patient (empty)."""
        ident = patient_key(patient).removeprefix("Patient/")

        def run(tx: Tx) -> list[bytes]:
            ids = same_person(tx, ident)
            if access.patient is not None and not set(ids) & set(same_person(tx, access.patient)):
                return []
            return search_audit_events(tx, patient=ids, count=count, offset=offset)

        return await self.store.read(run, short=True)

    async def freshness(self, access: AccessContext) -> tuple[SourceFreshness, ...]:
        """How current each trust's data is (last successful sync per source, stale past its limit)."""
        return await self.store.read(
            lambda tx: source_freshness(
                tx,
                ods_codes=self.source_ods,
                limits=self.staleness_limits,
                default_limit=self.rules.default_staleness_seconds,
                replica=self.store.is_replica,
            ),
            short=True,
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
                if p.type is ParamType.REFERENCE
                and rtype in p.targets
                # Provenance is composed on read: only its target is offered in reverse
                and (other != PROVENANCE or f"{other}:{p.code}" == REVINCLUDE)
            )
            if rtype == PROVENANCE:
                params = tuple(p for p in params if p.code in SEARCH_PARAMS)
                includes, revincludes = PROVENANCE_INCLUDES, ()
            operations = ("everything", "match") if rtype == "Patient" else ()
            out.append(TypeCapability(rtype, params, includes, revincludes, operations))
        return tuple(out)


_ASCII_DIGITS = frozenset("0123456789")
EVERYTHING_PARAMS = frozenset({"_since", "_type", "start", "end", "_count"})


def same_person(tx: Tx, patient_id: str) -> list[str]:
    """Every Patient id of the person ``patient_id`` is or belongs to (golden id and source records).

    The security screen uses it so that an objection or a restriction on one record covers the whole person.
    """
    return same_person_ids(tx, patient_id)


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
    if PROVENANCE in types:
        # composed on read, not part of the record $everything returns: say where it is rather than omit it
        raise InvalidRequest(
            "_type: $everything does not return Provenance; search Provenance?patient= or add"
            " _revinclude=Provenance:target to a search",
            expression=["_type"],
        )
    count = parse_non_negative(values.get("_count", str(default_count)), "_count", maximum=max_count)
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
        count=count,
    )
