"""Reading and searching the composed Provenance (see :mod:`bcconnect.view._provenance`), inside one snapshot.

A Provenance search is a search of its targets: ``target``, ``patient`` (a target that is a Patient: any id of a
person stands for all of them, as every Patient reference does), ``agent`` (the trust's Organization → the
ODS tag every resource from it carries), ``recorded`` and ``_lastUpdated`` (the version's ``lastUpdated``)
become the target's ``_id``, ``_tag`` and ``_lastUpdated`` clauses, run type by type through the store's own
screened search, so what the caller may not see never takes part in a match, a count or a page. A search
finds the Provenance of each resource's current version; an earlier version's Provenance is reached by its id
(read, ``_id``). Pages go type by type, keyed by ``<type>:<store cursor>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from bcconnect.errors import InvalidRequest, ResourceNotFound, Unsupported
from bcconnect.fhir.constants import SOURCE_ORG_TAG_SYSTEM
from bcconnect.search import (
    Clause,
    DateValue,
    Include,
    ReferenceValue,
    SearchQuery,
    TokenValue,
    Total,
    date_matches,
    date_range,
    registry,
)
from bcconnect.security import Screen
from bcconnect.store import (
    SearchPage,
    StoredResource,
    Tx,
    alias_closure,
    alias_members,
    current_t,
    export_rows_by_id,
    iter_current,
    read_current,
    read_version,
    search,
    source_record_versions,
)
from bcconnect.view._person import is_golden, person_centred
from bcconnect.view._provenance import (
    INCLUDES,
    PROVENANCE,
    SEARCH_PARAMS,
    TYPE_CODES,
    compose,
    parse_provenance_id,
    provenance_id,
    served_meta,
    source_record_key,
    trust_codes,
    trust_organizations,
)

#: a caller's golden Patients as they may see them (composed from visible sources only)
Present = Callable[[list[StoredResource]], list[StoredResource]]


@dataclass(frozen=True, slots=True)
class ProvenanceContext:
    """What composing a caller's Provenance needs: their screen, golden presentation and the rules' version."""

    screen: Screen
    present: Present
    rules_version: str

    def visible(self, items: list[StoredResource]) -> list[StoredResource]:
        """Screened (as every read is) and golden Patients composed for this caller."""
        return self.present(self.screen.apply(items).resources)


def target_types() -> tuple[str, ...]:
    """Every served type a Provenance can describe."""
    return tuple(t for t in registry().resource_types if t in TYPE_CODES)


def provenance_of(tx: Tx, ctx: ProvenanceContext, targets: Sequence[StoredResource]) -> list[StoredResource]:
    """The Provenance of each (already screened) target, in order; none when the caller may not read Provenance."""
    if not ctx.screen.visibility.allows_type(PROVENANCE) or not targets:
        return []
    golden = [t for t in targets if is_golden(t)]
    golden_ids = {(t.resource_type, t.id, t.version) for t in golden}
    # each target's meta parsed once: its trusts, its source record and the Provenance itself all read it
    metas = [served_meta(t) for t in targets]
    sources: dict[str, list[StoredResource]] = {}
    current: dict[str, bool] = {}
    if golden:
        # every golden target's sources read and screened at once (a page of an export holds thousands)
        members = alias_members(tx, "Patient", [g.id for g in golden])
        own = {g.id: [m for m in members.get(g.id, ()) if m != g.id] for g in golden}
        ids = sorted({m for ms in own.values() for m in ms} | {g.id for g in golden})
        live = {r.resource.id: r.resource for r in export_rows_by_id(tx, "Patient", ids, current_t(tx))}
        alive = [live[m] for m in sorted({m for ms in own.values() for m in ms}) if m in live]
        shown = {r.id: r for r in ctx.screen.apply([a for a in alive if a.body is not None]).resources}
        for item in golden:
            sources[item.id] = [shown[m] for m in own[item.id] if m in shown]
            head = live.get(item.id)
            current[item.id] = head is not None and head.version == item.version
    codes = {c for t, meta in zip(targets, metas, strict=True) for c in trust_codes(t, meta)} | {
        c for s in sources.values() for x in s for c in trust_codes(x)
    }
    organisations = trust_organizations(tx, codes)
    keys = {
        (t.resource_type, t.id): k
        for t, meta in zip(targets, metas, strict=True)
        if (t.resource_type, t.id, t.version) not in golden_ids and (k := source_record_key(t, meta)) is not None
    }
    landed = source_record_versions(tx, keys) if keys else {}
    out = []
    for item, meta in zip(targets, metas, strict=True):
        is_golden_item = (item.resource_type, item.id, item.version) in golden_ids
        made = compose(
            item,
            organisations,
            sources=sources.get(item.id) if is_golden_item else None,
            rules_version=ctx.rules_version,
            current=current.get(item.id, True),
            source_version=_landed_version(landed.get((item.resource_type, item.id)), item.version),
            meta=meta,
        )
        if made is not None:
            out.append(made)
    return out


def _landed_version(found: tuple[int, str] | None, version: int) -> str | None:
    """The source record's version, when ``version`` is the resource's current one (the landing keeps only the
    latest delivery)."""
    return found[1] if found is not None and found[0] == version else None


def read_provenance(tx: Tx, ctx: ProvenanceContext, provenance: str) -> StoredResource:
    """``Provenance/<id>``: composed when the caller may see the version it describes; absent otherwise."""
    missing = f"Provenance/{provenance} is not known"
    named = parse_provenance_id(provenance)
    if named is None or not ctx.screen.visibility.allows_type(PROVENANCE):
        raise ResourceNotFound(missing)
    rtype, rid, version = named
    if rtype not in registry().by_type:
        raise ResourceNotFound(missing)
    found = read_version(tx, rtype, rid, version)
    if found is None or found.deleted or found.body is None:
        raise ResourceNotFound(missing)
    made = provenance_of(tx, ctx, ctx.visible([found]))
    if not made:
        raise ResourceNotFound(missing)
    return made[0]


# --- search ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    """A Provenance search as searches of its targets."""

    types: tuple[str, ...]
    #: per type, the target's clauses (ANDed)
    clauses: dict[str, tuple[Clause, ...]]
    ids: tuple[tuple[str, ...], ...]  # _id clauses (each ORed, ANDed together)
    dates: tuple[tuple[DateValue, ...], ...]


def _references(clause: Clause) -> list[ReferenceValue]:
    out = []
    for value in clause.values:
        if not isinstance(value, ReferenceValue) or value.url is not None:
            raise Unsupported(f"{clause.param.code}: only local references are supported on Provenance")
        out.append(value)
    return out


def _check(query: SearchQuery) -> None:
    if query.sort:
        raise Unsupported("_sort is not supported on Provenance (results come type by type)")
    if query.revincludes:
        raise Unsupported("_revinclude is not supported on Provenance")
    for inc in query.includes:
        if f"Provenance:{inc.param.code}" not in INCLUDES or inc.iterate:
            raise Unsupported(f"_include=Provenance:{inc.param.code} is not supported ({', '.join(INCLUDES)})")
    for clause in query.clauses:
        if clause.param.code not in SEARCH_PARAMS:
            raise Unsupported(
                f"Provenance search does not take {clause.param.code!r}; it takes {', '.join(SEARCH_PARAMS)}"
            )
        lowered = clause.modifier is not None and clause.modifier[:1].islower() and clause.modifier != "missing"
        if clause.chain is not None or lowered:
            raise Unsupported(f"{clause.param.code}:{clause.modifier or 'chain'} is not supported on Provenance")


def _plan(tx: Tx, query: SearchQuery) -> _Plan:
    types = set(target_types())
    per_type: dict[str, list[Clause]] = {t: [] for t in types}
    ids: list[tuple[str, ...]] = []
    dates: list[tuple[DateValue, ...]] = []
    reg = registry()
    for clause in query.clauses:
        code = clause.param.code
        if clause.modifier == "missing":
            _missing(tx, clause, types, per_type)
            continue
        if code == "_id":
            ids.append(tuple(v.code for v in clause.values if isinstance(v, TokenValue) and v.code))
            continue
        if code in ("recorded", "_lastUpdated"):
            values = tuple(v for v in clause.values if isinstance(v, DateValue))
            dates.append(values)
            for rtype in types:
                param = reg.param(rtype, "_lastUpdated")
                assert param is not None  # a common parameter of every type
                per_type[rtype].append(Clause(param, values=values))
            continue
        refs = _references(clause)
        if code == "agent":
            wanted = {v.id for v in refs if v.type in (None, "Organization")}
            organisations = _organisation_codes(tx, wanted)
            tags = tuple(TokenValue(SOURCE_ORG_TAG_SYSTEM, c) for c in sorted(organisations))
            for rtype in types:
                param = reg.param(rtype, "_tag")
                assert param is not None
                per_type[rtype].append(Clause(param, values=tags or (TokenValue(SOURCE_ORG_TAG_SYSTEM, ""),)))
            continue
        allowed = {"Patient"} if code == "patient" else set(types)
        if clause.modifier:
            allowed &= {clause.modifier}
        named: dict[str, set[str]] = {}
        for ref in refs:
            for rtype in allowed if ref.type is None else allowed & {ref.type}:
                named.setdefault(rtype, set()).add(ref.id)
        if "Patient" in named:
            # any id of a person is a reference to the person (the documented person model)
            closure = alias_closure(tx, "Patient", sorted(named["Patient"]))
            named["Patient"] = {m for i in named["Patient"] for m in closure[i]}
        types &= set(named)
        for rtype, found in named.items():
            if rtype in per_type:
                param = reg.param(rtype, "_id")
                assert param is not None
                per_type[rtype].append(Clause(param, values=tuple(TokenValue(None, i) for i in sorted(found))))
    ordered = tuple(sorted(types))
    return _Plan(ordered, {t: tuple(per_type[t]) for t in ordered}, tuple(ids), tuple(dates))


def _missing(tx: Tx, clause: Clause, types: set[str], per_type: dict[str, list[Clause]]) -> None:
    """``:missing``: every Provenance has an id, a target and a recorded time; ``patient`` is there when the
    target is a Patient; ``agent`` (a literal reference) when the trust's Organization is in the view."""
    code, missing = clause.param.code, bool(clause.missing_value)
    if code == "patient":
        types.intersection_update(set(types) - {"Patient"} if missing else {"Patient"} & types)
    elif code == "agent":
        codes = sorted(_organisation_ods_codes(tx))
        reg = registry()
        for rtype in types:
            param = reg.param(rtype, "_tag")
            assert param is not None
            tags = tuple(TokenValue(SOURCE_ORG_TAG_SYSTEM, c) for c in codes) or (
                TokenValue(SOURCE_ORG_TAG_SYSTEM, ""),
            )
            if rtype == "Patient" and not missing:
                # a golden Patient's Provenance names no trust as its agent: it is among the "missing"
                per_type[rtype].append(Clause(param, values=tags))
            else:
                per_type[rtype].append(Clause(param, modifier="not" if missing else None, values=tags))
    elif missing:
        types.clear()


def _organisation_ods_codes(tx: Tx) -> set[str]:
    """Every ODS code some Organization in the view carries as its identifier."""
    import orjson

    codes: set[str] = set()
    after = ""
    while True:
        batch = iter_current(tx, "Organization", after_id=after, limit=1000)
        for org in batch:
            for ident in orjson.loads(org.body or b"{}").get("identifier") or ():
                if isinstance(ident, dict) and ident.get("system") == SOURCE_ORG_TAG_SYSTEM and ident.get("value"):
                    codes.add(str(ident["value"]))
        if len(batch) < 1000:
            return codes
        after = batch[-1].id


def _organisation_codes(tx: Tx, organisation_ids: set[str]) -> set[str]:
    """The ODS codes whose trust Organization (as a Provenance names it) is one of ``organisation_ids``."""
    codes = set()
    for oid in organisation_ids:
        found = read_current(tx, "Organization", oid)
        if found is None or found.body is None or found.deleted:
            continue
        import orjson  # local: only an agent search parses an Organization

        for ident in orjson.loads(found.body).get("identifier") or ():
            if isinstance(ident, dict) and ident.get("system") == SOURCE_ORG_TAG_SYSTEM and ident.get("value"):
                codes.add(str(ident["value"]))
    return {c for c, oid in trust_organizations(tx, codes).items() if oid in organisation_ids}


def _target_query(query: SearchQuery, rtype: str, clauses: tuple[Clause, ...], count: int) -> SearchQuery:
    return SearchQuery(resource_type=rtype, clauses=clauses, count=count, total=Total.NONE)


def search_provenance(
    tx: Tx,
    ctx: ProvenanceContext,
    query: SearchQuery,
    *,
    at: int | None,
    offset: int,
    after: str | None,
) -> SearchPage:
    """One page of a Provenance search (see the module docstring)."""
    _check(query)
    t = at if at is not None else current_t(tx)
    if not ctx.screen.visibility.allows_type(PROVENANCE):
        return SearchPage(t, offset, [], [], 0, False)
    plan = _plan(tx, query)
    if plan.ids:
        return _by_id(tx, ctx, query, plan, t, offset)
    start_type, cursor = None, None
    if after is not None:
        start_type, _, cursor = after.partition(":")
        if start_type not in plan.types or (cursor and not cursor.isdigit()):
            raise InvalidRequest("the page link is malformed; search again")
    seen = ctx.screen.visibility

    def counted() -> int:
        found = (search(tx, _target_query(query, r, plan.clauses[r], 0), at=t, visibility=seen) for r in plan.types)
        return sum(page.total or 0 for page in found)

    total: int | None = None
    if query.count == 0 or query.total in (Total.ACCURATE, Total.ESTIMATE):
        total = counted()
        if query.count == 0:
            return SearchPage(t, offset, [], [], total, False)
    targets: list[StoredResource] = []
    next_after: str | None = None
    has_more = False
    types = list(plan.types)
    if start_type is not None:
        types = types[types.index(start_type) :]
    for position, rtype in enumerate(types):
        room = query.count - len(targets)
        within = cursor if position == 0 and cursor else None
        if room <= 0:
            # the page is full: is there anything after it?
            probe = search(tx, _target_query(query, rtype, plan.clauses[rtype], 1), at=t, visibility=seen)
            if probe.matches:
                has_more = True
                next_after = f"{rtype}:"
                break
            continue
        page = search(tx, _target_query(query, rtype, plan.clauses[rtype], room), at=t, after=within, visibility=seen)
        shown = ctx.present(ctx.screen.page(page).matches)
        targets += shown
        if page.has_more:
            has_more = True
            next_after = f"{rtype}:{page.after or ''}"
            break
    if total is None and after is None and query.total is not Total.NONE:
        # counted on the first page, as every search is (later pages stay as cheap as the first)
        total = counted() if has_more else len(targets)
    provenance = provenance_of(tx, ctx, targets)
    return SearchPage(t, offset, provenance, _included(tx, ctx, query, targets), total, has_more, next_after)


def _by_id(tx: Tx, ctx: ProvenanceContext, query: SearchQuery, plan: _Plan, t: int, offset: int) -> SearchPage:
    """``_id`` names versions directly (any version, not only current ones); the other clauses filter them."""
    wanted = set(plan.ids[0])
    for more in plan.ids[1:]:
        wanted &= set(more)
    targets = []
    for pid in sorted(wanted):
        named = parse_provenance_id(pid)
        if named is None or named[0] not in plan.types:
            continue
        found = read_version(tx, named[0], named[1], named[2])
        if found is None or found.deleted or found.body is None:
            continue
        if not _clauses_hold(tx, ctx, plan, found):
            continue
        targets += ctx.visible([found])
    targets = targets[: query.count] if query.count else []
    total = len(targets) if query.count else len(wanted)
    provenance = provenance_of(tx, ctx, targets)
    return SearchPage(t, offset, provenance, _included(tx, ctx, query, targets), total, False)


def _clauses_hold(tx: Tx, ctx: ProvenanceContext, plan: _Plan, version: StoredResource) -> bool:
    """Whether one version meets the non-``_id`` clauses (a version need not be current here)."""
    clauses = [c for c in plan.clauses[version.resource_type] if c.param.code != "_lastUpdated"]
    if clauses:
        ids = Clause(registry().common["_id"], values=(TokenValue(None, version.id),))
        probe = SearchQuery(version.resource_type, clauses=(ids, *clauses), count=1, total=Total.NONE)
        if not search(tx, probe, visibility=ctx.screen.visibility).matches:
            return False
    stamped = date_range(version.last_updated)
    if stamped is None:
        return False
    return all(any(date_matches(v, stamped[0], stamped[1]) for v in values) for values in plan.dates)


def _included(
    tx: Tx, ctx: ProvenanceContext, query: SearchQuery, targets: list[StoredResource]
) -> list[StoredResource]:
    """``_include=Provenance:target`` (the targets as served) and ``Provenance:agent`` (the trusts)."""
    out: list[StoredResource] = []
    codes = {inc.param.code for inc in query.includes}
    if "target" in codes:
        out += person_centred(tx, targets)
    elif "patient" in codes:
        out += person_centred(tx, [t for t in targets if t.resource_type == "Patient"])
    if "agent" in codes and ctx.screen.visibility.allows_type("Organization"):
        organisations = trust_organizations(tx, {c for t in targets for c in trust_codes(t)})
        found = [read_current(tx, "Organization", oid) for oid in sorted(set(organisations.values()))]
        out += ctx.screen.apply([o for o in found if o is not None and not o.deleted]).resources
    seen: set[tuple[str, str]] = set()
    kept = []
    for item in out:
        if (item.resource_type, item.id) not in seen:
            seen.add((item.resource_type, item.id))
            kept.append(item)
    return kept


def revinclude_provenance(tx: Tx, ctx: ProvenanceContext, query: SearchQuery, page: SearchPage) -> list[StoredResource]:
    """``_revinclude=Provenance:target`` on any search: the Provenance of the page's matches (and, with
    ``:iterate``, of what it included). A Patient match brings the Provenance of every Patient id of its person
    (whatever points at one of them points at the person)."""
    wanted = [inc for inc in query.revincludes if _is_provenance_target(inc)]
    if not wanted:
        return []
    targets = list(page.matches)
    if any(inc.iterate for inc in wanted):
        targets += page.included
    patients = [t.id for t in targets if t.resource_type == "Patient"]
    if patients:
        have = {t.id for t in targets if t.resource_type == "Patient"}
        closure = alias_closure(tx, "Patient", patients)
        others = sorted({m for p in patients for m in closure[p]} - have)
        found = [read_current(tx, "Patient", pid) for pid in others]
        targets += ctx.visible([f for f in found if f is not None and not f.deleted and f.body is not None])
    return provenance_of(tx, ctx, targets)


def _is_provenance_target(inc: Include) -> bool:
    return inc.source_type == PROVENANCE and inc.param.code == "target"


def versioned_targets(params: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """``target=Type/id/_history/n`` names one version, so one Provenance: the same as ``_id=<its id>`` (a search
    would otherwise drop the version and answer for the current one)."""
    out = []
    for name, value in params:
        if name != "target" or "/_history/" not in value:
            out.append((name, value))
            continue
        ids = []
        for one in value.split(","):
            parts = one.rstrip("/").split("/")
            named = (
                provenance_id(parts[-4], parts[-3], int(parts[-1]))
                if len(parts) >= 4 and parts[-2] == "_history" and parts[-1].isdigit() and len(parts[-1]) <= 18
                else None
            )
            if named is None:
                raise InvalidRequest(f"target: {one!r} names no version of a served resource", expression=["target"])
            ids.append(named)
        out.append(("_id", ",".join(ids)))
    return out


def without_provenance_revincludes(query: SearchQuery) -> SearchQuery:
    """The query the store runs: Provenance is composed here, never stored, so the store is not asked for it."""
    if not any(inc.source_type == PROVENANCE for inc in query.revincludes):
        return query
    for inc in query.revincludes:
        if inc.source_type == PROVENANCE and inc.param.code != "target":
            raise Unsupported(f"_revinclude=Provenance:{inc.param.code} is not supported (Provenance:target is)")
    return replace(query, revincludes=tuple(i for i in query.revincludes if i.source_type != PROVENANCE))
