"""Run searches and ``$everything`` at a logical time ``t`` (snapshot-consistent paging, after Blaze).

The first page runs at the current ``t``; later pages pass the same ``t`` back (inside the API's page token),
so versions written since are invisible and the result list cannot shift: OFFSET over an immutable snapshot.
"""

# ruff: noqa: S608 - this module assembles SQL from fixed fragments; every value is a '?' parameter

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bcconnect.errors import InvalidRequest
from bcconnect.search import Include, ParamType, ReferenceValue, SearchQuery, Total, token_hash
from bcconnect.store._alias import alias_closure, alias_members, canonical_ids
from bcconnect.store._resources import VERSION_COLUMNS, StoredResource, current_t, stored_from_row
from bcconnect.store._search_sql import (
    check_supported,
    compile_clause,
    driver_rank,
    sort_expression,
    type_match,
    valid_at,
)
from bcconnect.store._tx import Tx
from bcconnect.store._visibility import Visibility

#: at most this many resources are added by _include/_revinclude to one page
MAX_INCLUDED = 1000
#: rounds of :iterate
MAX_ITERATIONS = 3
#: resource types $everything adds when a compartment resource points at them
EVERYTHING_REFERENCED = ("Organization", "Practitioner", "PractitionerRole", "Location", "Medication")
#: (type, parameter) on which every non-canonical alias is served pointing at its canonical id (a source
#: Patient's ``link`` of type ``refer`` to its golden Patient); matched literally otherwise, never by alias
SELF_LINKS = frozenset({("Patient", "link")})


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of results at logical time ``t``; ``total`` is None when not asked for or not computed."""

    t: int
    offset: int
    matches: list[StoredResource]
    included: list[StoredResource]
    total: int | None
    has_more: bool
    #: keyset cursor: where the page after this one starts (from the last row read, before any screening);
    #: None when the order cannot be keyed (``_sort``) and the next page goes by offset
    after: str | None = None


def check_snapshot(tx: Tx, at: int | None) -> None:
    """Refuse an ``at`` (from a page link) later than this store's clock."""
    if at is None:
        return
    if at > current_t(tx):
        raise InvalidRequest("the page link refers to a state this store has not reached; search again")


#: selected first in a page query at "now", so the snapshot's clock comes back without another round trip
_CLOCK = "(SELECT t FROM store_clock WHERE id = 1)"


def _page_t(tx: Tx, at: int | None, rows: Sequence[Sequence[Any]]) -> int:
    """The logical time of the page: ``at``, or the clock read with the rows (or read now: same snapshot)."""
    if at is not None:
        return at
    return int(rows[0][0]) if rows else current_t(tx)


def _aliased(tx: Tx, query: SearchQuery) -> tuple[SearchQuery, dict[int, list[str]]]:
    """The query with each reference value widened to every id that answers as the same resource.

    Returns the new query and, per self-link clause (by identity), the ids of the aliases served pointing at
    a canonical id the clause names (``Patient?link=Patient/<golden>`` finds the source Patients).
    """
    extra: dict[int, list[str]] = {}
    clauses = []
    for clause in query.clauses:
        refs = [v for v in clause.values if isinstance(v, ReferenceValue) and v.url is None]
        if clause.param.type is not ParamType.REFERENCE or not refs:
            clauses.append(clause)
            continue
        if (query.resource_type, clause.param.code) in SELF_LINKS:
            members = alias_members(tx, query.resource_type, [v.id for v in refs if v.type in (None, "Patient")])
            own = [m for canon, group in members.items() for m in group if m != canon]
            clauses.append(clause)
            if own:
                extra[id(clause)] = own
            continue
        widened: list[Any] = []
        closure = alias_closure(tx, "Patient", [v.id for v in refs if v.type in (None, "Patient")])
        for value in clause.values:
            if isinstance(value, ReferenceValue) and value.id in closure and value.type in (None, "Patient"):
                found = closure[value.id]
                if len(found) > 1 or found[0] != value.id:
                    widened += [ReferenceValue("Patient", member) for member in found]
                    continue
            widened.append(value)
        clauses.append(replace(clause, values=tuple(dict.fromkeys(widened))))
    return replace(query, clauses=tuple(clauses)), extra


def _where(
    query: SearchQuery, at: int | None, visibility: Visibility, extra: dict[int, list[str]] | None = None
) -> tuple[str, list[object]]:
    extra = extra or {}
    ranked = sorted(query.clauses, key=driver_rank)
    has_id = any(c.param.code == "_id" for c in query.clauses)
    driven = bool(ranked) and not has_id and driver_rank(ranked[0]) < 99
    live, live_params = valid_at("v", at)
    seen, seen_params = visibility.rows("v")
    conds = [f"{type_match('v', driven)} AND {live} AND {seen}"]
    params: list[object] = [query.resource_type, *live_params, *seen_params]
    for position, clause in enumerate(ranked):
        check_supported(clause)
        driver = position == 0 and not has_id and driver_rank(clause) < 99
        cond, values = compile_clause(query.resource_type, clause, "v", at, driver=driver, visibility=visibility)
        own = extra.get(id(clause))
        if own and clause.modifier is None:
            cond = f"({cond} OR v.res_id IN ({','.join('?' * len(own))}))"
            values = [*values, *own]
        conds.append(cond)
        params += values
    return " AND ".join(conds), params


def search(
    tx: Tx,
    query: SearchQuery,
    *,
    visibility: Visibility,
    at: int | None = None,
    offset: int = 0,
    after: str | None = None,
) -> SearchPage:
    """One page of ``query``: ``query.count`` matches at logical time ``at`` (default: now).

    Only rows ``visibility`` lets the caller see take part: in matching, counting, sorting, paging and includes.

    Without ``_sort`` results come in version-key order and a page starts after the previous page's last key
    (``after``, from :attr:`SearchPage.after`): a deep page costs what the first costs. With ``_sort`` the
    next page goes by ``offset``. ``offset`` is otherwise only the position reported back.
    """
    check_snapshot(tx, at)
    query, self_linked = _aliased(tx, query)
    where, params = _where(query, at, visibility, self_linked)
    keyed = not query.sort
    page_where, page_params = where, list(params)
    if keyed and after is not None:
        if not after.isdigit():
            raise InvalidRequest("the page link is malformed; search again")
        page_where += " AND v.vid > ?"
        page_params.append(int(after))
    total: int | None = None
    want_total = query.total in (Total.ACCURATE, Total.ESTIMATE) or query.count == 0
    if query.count == 0:
        row = tx.query_one(f"SELECT COUNT(*), {_CLOCK} FROM resource_versions v WHERE {where}", params)
        assert row is not None  # an aggregate always returns a row
        return SearchPage(at if at is not None else int(row[1]), offset, [], [], int(row[0]), False)
    order: list[str] = ["v.vid"]
    order_params: list[object] = []
    for key in query.sort:
        expr, extra = sort_expression(key, "v", query.resource_type, visibility)
        order.insert(len(order) - 1, expr)
        order_params += extra
    rows = tx.query(
        f"SELECT {_CLOCK}, v.vid, {VERSION_COLUMNS} FROM resource_versions v WHERE {page_where}"
        f" ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
        # keyed pages start after the cursor; a "previous" link (no cursor) still goes by offset
        [*page_params, *order_params, query.count + 1, 0 if keyed and after is not None else offset],
    )
    t = _page_t(tx, at, rows)
    has_more = len(rows) > query.count
    rows = rows[: query.count]
    cursor = str(rows[-1][1]) if keyed and rows else None
    matches = [stored_from_row(r[2:]) for r in rows]
    if query.total is not Total.NONE:
        if offset == 0 and not has_more:
            total = len(matches)
        elif want_total or (query.total is None and (offset == 0 if not keyed else after is None)):
            # counted on the first page (and whenever _total asks): later pages stay as cheap as the first
            row = tx.query_one(f"SELECT COUNT(*) FROM resource_versions v WHERE {where}", params)
            total = int(row[0]) if row else None
    included = _includes(tx, query, [int(r[1]) for r in rows], matches, at, visibility)
    return SearchPage(t, offset, matches, included, total, has_more, cursor)


def _versions_at(
    tx: Tx, rtype: str, ids: Sequence[str], at: int | None, visibility: Visibility
) -> list[tuple[int, StoredResource]]:
    out = []
    live, live_params = valid_at("v", at)
    seen, seen_params = visibility.rows("v")
    for i in range(0, len(ids), 500):
        chunk = list(ids[i : i + 500])
        rows = tx.query(
            f"SELECT v.vid, {VERSION_COLUMNS} FROM resource_versions v"
            f" WHERE v.res_type = ? AND v.res_id IN ({','.join('?' * len(chunk))}) AND {live} AND {seen}",
            [rtype, *chunk, *live_params, *seen_params],
        )
        out += [(int(r[0]), stored_from_row(r[1:])) for r in rows]
    return out


def _forward(
    tx: Tx, inc: Include, frontier: Sequence[tuple[int, StoredResource]], at: int | None, visibility: Visibility
) -> list[tuple[int, StoredResource]]:
    hidden = visibility.hides_param(inc.source_type, inc.param.code)
    # nothing is included through an element a restricted patient hides (their GP, their places)
    frontier = [(vid, r) for vid, r in frontier if not (hidden and visibility.is_restricted(r.compartment))]
    vids = [v for v, _ in frontier]
    if not vids:
        return []
    sql = (
        "SELECT DISTINCT target_type, target_id FROM idx_reference"
        f" WHERE vid IN ({','.join('?' * len(vids))}) AND res_type = ? AND param = ?"
    )
    params: list[object] = [*vids, inc.source_type, inc.param.code]
    if inc.target_type:
        sql += " AND target_type = ?"
        params.append(inc.target_type)
    by_type: dict[str, list[str]] = {}
    for target_type, target_id in tx.query(sql, params):
        if target_type and target_id:
            by_type.setdefault(target_type, []).append(target_id)
    if (inc.source_type, inc.param.code) in SELF_LINKS:
        # literal targets, and the canonical id each alias is served pointing at
        canon = canonical_ids(tx, inc.source_type, [r.id for _, r in frontier])
        if inc.target_type in (None, inc.source_type):
            by_type.setdefault(inc.source_type, []).extend(c for i, c in canon.items() if c != i)
    elif "Patient" in by_type:
        # a reference to a source Patient is served pointing at its golden Patient: include that one
        canon = canonical_ids(tx, "Patient", by_type["Patient"])
        by_type["Patient"] = list(dict.fromkeys(canon.get(i, i) for i in by_type["Patient"]))
    return [
        item
        for rtype, ids in by_type.items()
        for item in _versions_at(tx, rtype, list(dict.fromkeys(ids)), at, visibility)
    ]


def _reverse(
    tx: Tx, inc: Include, targets: Sequence[StoredResource], at: int | None, visibility: Visibility
) -> list[tuple[int, StoredResource]]:
    live, live_params = valid_at("v", at)
    seen, seen_params = visibility.rows("v")
    if visibility.hides_param(inc.source_type, inc.param.code):
        restricted, restricted_params = visibility.restricted_row("v")
        seen, seen_params = f"{seen} AND NOT {restricted}", [*seen_params, *restricted_params]
    if not visibility.allows_type(inc.source_type):
        return []
    found: list[tuple[int, StoredResource]] = []
    by_type: dict[str, list[str]] = {}
    for r in targets:
        if inc.target_type is None or inc.target_type == r.resource_type:
            by_type.setdefault(r.resource_type, []).append(r.id)
    self_link = (inc.source_type, inc.param.code) in SELF_LINKS
    if "Patient" in by_type and not self_link:
        # whatever points at any id of a person points, as served, at the person's golden Patient
        closure = alias_closure(tx, "Patient", by_type["Patient"])
        by_type["Patient"] = list(dict.fromkeys(m for i in by_type["Patient"] for m in closure[i]))
    if self_link:
        members = alias_members(tx, inc.source_type, by_type.get(inc.source_type, []))
        own = [m for canon, group in members.items() for m in group if m != canon]
        if own:
            found += _versions_at(tx, inc.source_type, own, at, visibility)
    for rtype, ids in by_type.items():
        rows = tx.query(
            f"SELECT v.vid, {VERSION_COLUMNS} FROM resource_versions v"
            f" WHERE {type_match('v', True)} AND {live} AND {seen} AND v.vid IN (SELECT vid FROM idx_reference"
            f" WHERE res_type = ? AND param = ? AND target_type = ? AND target_id IN ({','.join('?' * len(ids))}))"
            " LIMIT ?",
            [inc.source_type, *live_params, *seen_params, inc.source_type, inc.param.code, rtype, *ids, MAX_INCLUDED],
        )
        found += [(int(r[0]), stored_from_row(r[1:])) for r in rows]
    return found


def _includes(
    tx: Tx,
    query: SearchQuery,
    vids: list[int],
    matches: list[StoredResource],
    at: int | None,
    visibility: Visibility,
) -> list[StoredResource]:
    """Resources included from ``matches`` (already screened), each itself screened by ``visibility``."""
    if not (query.includes or query.revincludes) or not matches:
        return []
    seen = {(m.resource_type, m.id) for m in matches}
    included: list[StoredResource] = []
    frontier = list(zip(vids, matches, strict=True))
    for round_number in range(MAX_ITERATIONS + 1):
        found: list[tuple[int, StoredResource]] = []
        for inc in query.includes:
            if round_number == 0 or inc.iterate:
                sources = [(v, r) for v, r in frontier if r.resource_type == inc.source_type]
                found += _forward(tx, inc, sources, at, visibility)
        for inc in query.revincludes:
            if round_number == 0 or inc.iterate:
                found += _reverse(tx, inc, [r for _, r in frontier], at, visibility)
        frontier = []
        for vid, resource in found:
            key = (resource.resource_type, resource.id)
            if key not in seen and len(included) < MAX_INCLUDED:
                seen.add(key)
                included.append(resource)
                frontier.append((vid, resource))
        if not frontier or not any(i.iterate for i in (*query.includes, *query.revincludes)):
            break
    return included


@dataclass(frozen=True, slots=True)
class EverythingQuery:
    """``Patient/{id}/$everything`` options."""

    patient_id: str
    types: tuple[str, ...] = ()
    since: str | None = None
    start: int | None = None
    end: int | None = None
    count: int = 50


def _everything_where(
    query: EverythingQuery, patients: Sequence[str], at: int | None, visibility: Visibility
) -> tuple[str, list[object]]:
    live_cv, live_params = valid_at("cv", at)
    live_rv, _ = valid_at("rv", at)
    marks = ",".join("?" * len(patients))
    compartment = (
        "SELECT pc.vid FROM patient_compartment pc JOIN resource_versions cv ON cv.vid = pc.vid"
        f" WHERE pc.patient_id IN ({marks}) AND {live_cv}"
    )
    # what the compartment references is found only from its rows the caller may see
    seen_cv, seen_cv_params = visibility.rows("cv")
    shown_compartment = f"{compartment} AND {seen_cv}"
    not_hidden, hidden_params = _references_shown(patients, visibility)
    # targets first (few), then their versions: CROSS JOIN keeps SQLite from scanning versions by type
    referenced = (
        "SELECT rv.vid FROM (SELECT DISTINCT r.target_type AS tt, r.target_id AS ti FROM idx_reference r"
        f" WHERE r.vid IN ({shown_compartment}) AND r.target_type IN ({','.join('?' * len(EVERYTHING_REFERENCED))})"
        f"{not_hidden}) tr"
        f" CROSS JOIN resource_versions rv WHERE rv.res_type = tr.tt AND rv.res_id = tr.ti AND {live_rv}"
    )
    seen, seen_params = visibility.rows("v")
    params: list[object] = [
        *patients, *live_params,
        *patients, *live_params, *seen_cv_params, *EVERYTHING_REFERENCED, *hidden_params, *live_params,
        *seen_params,
    ]  # fmt: skip
    where = f"v.vid IN ({compartment} UNION {referenced}) AND {seen}"
    asked, asked_params = _everything_filters(query)
    return where + asked, params + asked_params


def _references_shown(patients: Sequence[str], visibility: Visibility) -> tuple[str, list[object]]:
    """The condition (`` AND …`` on ``idx_reference r``, or "") on which references of restricted patients'
    compartments lead to the resources they name: no Location, nor what the restricted parameters point at."""
    if not any(visibility.is_restricted(p) for p in patients):
        return "", []
    hidden_params: list[object] = [
        *sorted(f"{t}:{c}" for t, codes in visibility.restricted_params.items() for c in codes)
    ]
    not_hidden = " AND r.target_type <> 'Location'"
    if hidden_params:
        not_hidden += f" AND r.res_type || ':' || r.param NOT IN ({','.join('?' * len(hidden_params))})"
    return not_hidden, hidden_params


def _everything_filters(query: EverythingQuery) -> tuple[str, list[object]]:
    """``$everything``'s own parameters (``_type``, ``_since``, ``start``/``end``) as `` AND …`` on version ``v``."""
    where, params = "", list[object]()
    if query.types:
        where += f" AND v.res_type IN ({','.join('?' * len(query.types))})"
        params += list(query.types)
    if query.since is not None:
        where += " AND v.last_updated >= ?"
        params.append(query.since)
    if query.start is not None or query.end is not None:
        # care dates: a resource with clinical dates must have one in range; undated resources stay
        rng, rng_params = [], []
        if query.start is not None:
            rng.append("d.high > ?")
            rng_params.append(query.start)
        if query.end is not None:
            rng.append("d.low < ?")
            rng_params.append(query.end)
        dated = "SELECT 1 FROM idx_date d WHERE d.vid = v.vid AND d.param <> '_lastUpdated'"
        where += f" AND (NOT EXISTS ({dated}) OR EXISTS ({dated} AND {' AND '.join(rng)}))"
        params += rng_params
    return where, params


def everything(
    tx: Tx,
    query: EverythingQuery,
    *,
    visibility: Visibility,
    at: int | None = None,
    offset: int = 0,
    after: str | None = None,
) -> SearchPage:
    """The patient's compartment at ``at`` plus the practitioners, organisations and locations it references.

    Ordered by (type, version key); a page starts after the previous page's last key (``after``, from
    :attr:`SearchPage.after`), so a deep page costs what the first costs. ``offset`` is the position reported.
    """
    check_snapshot(tx, at)
    where, params = _everything_where(query, [query.patient_id], at, visibility)
    if query.count == 0:
        row = tx.query_one(f"SELECT COUNT(*), {_CLOCK} FROM resource_versions v WHERE {where}", params)
        assert row is not None  # an aggregate always returns a row
        return SearchPage(at if at is not None else int(row[1]), offset, [], [], int(row[0]), False)
    page_where, page_params = where, list(params)
    if after is not None:
        rtype, _, vid = after.rpartition("/")
        if not rtype or not vid.isdigit():
            raise InvalidRequest("the page link is malformed; ask for $everything again")
        page_where += " AND (v.res_type > ? OR (v.res_type = ? AND v.vid > ?))"
        page_params += [rtype, rtype, int(vid)]
    rows = tx.query(
        f"SELECT {_CLOCK}, v.vid, {VERSION_COLUMNS} FROM resource_versions v WHERE {page_where}"
        " ORDER BY v.res_type, v.vid LIMIT ? OFFSET ?",
        [*page_params, query.count + 1, offset if after is None else 0],
    )
    t = _page_t(tx, at, rows)
    has_more = len(rows) > query.count
    rows = rows[: query.count]
    matches = [stored_from_row(r[2:]) for r in rows]
    cursor = f"{rows[-1][2]}/{rows[-1][1]}" if rows else None
    total: int | None = len(matches) if after is None and offset == 0 and not has_more else None
    if total is None and after is None:
        row = tx.query_one(f"SELECT COUNT(*) FROM resource_versions v WHERE {where}", params)
        total = int(row[0]) if row else None
    return SearchPage(t, offset, matches, [], total, has_more, cursor)


def everything_of(
    tx: Tx, query: EverythingQuery, patients: Sequence[str], *, visibility: Visibility, at: int | None = None
) -> tuple[int, list[StoredResource]]:
    """Every resource of several Patients' compartments (a person's records) at ``at``, in one read.

    Returns the logical time read at and the resources in (type, version key) order.
    """
    check_snapshot(tx, at)
    if not patients:
        return (at if at is not None else current_t(tx)), []
    where, params = _everything_where(query, patients, at, visibility)
    rows = tx.query(
        f"SELECT {_CLOCK}, {VERSION_COLUMNS} FROM resource_versions v WHERE {where} ORDER BY v.res_type, v.vid",
        params,
    )
    return _page_t(tx, at, rows), [stored_from_row(r[1:]) for r in rows]


def current_ids_with_token(tx: Tx, resource_type: str, param: str, tokens: Sequence[tuple[str, str]]) -> set[str]:
    """Ids of current (live) ``resource_type`` resources whose ``param`` carries one of ``(system, code)``.

    For system lookups (which patients are restricted, which Patient carries an NHS number), never an answer
    to a caller.
    """
    found: set[str] = set()
    hashes = [token_hash(resource_type, param, system, code) for system, code in tokens]
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        rows = tx.query(
            "SELECT DISTINCT v.res_id FROM idx_token x JOIN resource_versions v ON v.vid = x.vid"
            f" WHERE x.hash_sys_value IN ({','.join('?' * len(chunk))}) AND v.t_end IS NULL AND v.deleted = 0",
            chunk,
        )
        found.update(str(r[0]) for r in rows)
    return found


#: above this many tokens a lookup is left to :func:`current_ids_with_token`'s chunks (statement size)
_ONE_STATEMENT_TOKENS = 400


def counters_and_tokens(
    tx: Tx, lookups: Mapping[str, tuple[str, str, Sequence[tuple[str, str]]]]
) -> tuple[dict[str, int], dict[str, set[str]]]:
    """:func:`~bcconnect.store.change_counters` and, per name, :func:`current_ids_with_token` for
    ``(resource type, parameter, tokens)``, in one statement (the per-request facts a screen needs).

    A lookup of more than a few hundred tokens runs on its own, chunked, after the statement.
    """
    parts = ["SELECT 'counter', family, SUM(version) FROM store_change_counters GROUP BY family"]
    params: list[object] = []
    large: dict[str, tuple[str, str, Sequence[tuple[str, str]]]] = {}
    for name, (rtype, param, tokens) in lookups.items():
        if not tokens:
            continue
        if len(tokens) > _ONE_STATEMENT_TOKENS:
            large[name] = (rtype, param, tokens)
            continue
        hashes = [token_hash(rtype, param, system, code) for system, code in tokens]
        if tx.dialect == "postgresql":
            # the hashes as one array driving the loop: PostgreSQL readers plan generically, and the generic
            # plan for a long IN list merge-joined every version in the store (0.3 s a request at 1.3M persons)
            parts.append(
                "SELECT ?, v.res_id, 0 FROM unnest(?::bigint[]) AS h(hash)"
                " JOIN idx_token x ON x.hash_sys_value = h.hash JOIN resource_versions v ON v.vid = x.vid"
                " WHERE v.t_end IS NULL AND v.deleted = 0"
            )
            params += [name, hashes]
            continue
        parts.append(
            "SELECT ?, v.res_id, 0 FROM idx_token x JOIN resource_versions v ON v.vid = x.vid"
            f" WHERE x.hash_sys_value IN ({','.join('?' * len(hashes))}) AND v.t_end IS NULL AND v.deleted = 0"
        )
        params += [name, *hashes]
    counters: dict[str, int] = {}
    found: dict[str, set[str]] = {name: set() for name in lookups}
    for kind, key, value in tx.query(" UNION ALL ".join(parts), params):
        if kind == "counter":
            counters[str(key)] = int(value)
        else:
            found[str(kind)].add(str(key))
    for name, (rtype, param, tokens) in large.items():
        found[name] = current_ids_with_token(tx, rtype, param, tokens)
    return counters, found


def read_currents(tx: Tx, resource_type: str, ids: Sequence[str]) -> dict[str, StoredResource]:
    """The current version (possibly a deletion) of each of ``ids`` that exists, in one read per few hundred ids:
    what :func:`~bcconnect.store.read_current` gives one by one, for a page of persons at once."""
    found: dict[str, StoredResource] = {}
    wanted = list(dict.fromkeys(ids))
    for start in range(0, len(wanted), _KEYS_PER_LOOKUP):
        chunk = wanted[start : start + _KEYS_PER_LOOKUP]
        rows = tx.query(
            f"SELECT {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.vid = r.vid"
            f" WHERE r.res_type = ? AND r.res_id IN ({','.join('?' * len(chunk))})",
            [resource_type, *chunk],
        )
        for row in rows:
            stored = stored_from_row(row)
            found[stored.id] = stored
    return found


#: keys per SQLite look-up (three '?' each, well inside SQLite's parameter limit beside the screen's own)
_KEYS_PER_LOOKUP = 500


def version_keys_sql(dialect: str, count: int) -> tuple[str, str]:
    """``FROM`` text joining ``count`` ``(type, id, version)`` keys to ``resource_versions v`` by its unique key,
    and the form of their parameters (``arrays``: three arrays; ``rows``: three values per key).

    Keys are a relation joined to the table, never an ``OR`` of triplets: PostgreSQL plans a few hundred ORed
    triplets as a scan of every version (seconds at region size) where the join is one index probe per key.
    PostgreSQL takes the keys as three arrays (``unnest``: one statement whatever their number); SQLite as a
    ``VALUES`` list driving the loop (``CROSS JOIN`` keeps it outermost, so each key is a unique-index search).
    """
    if dialect == "postgresql":
        return (
            "unnest(?::text[], ?::text[], ?::bigint[]) AS k(res_type, res_id, version)"
            " JOIN resource_versions v"
            " ON v.res_type = k.res_type AND v.res_id = k.res_id AND v.version = k.version",
            "arrays",
        )
    values = ", ".join("(?, ?, ?)" for _ in range(count))
    return (
        f"(VALUES {values}) AS k CROSS JOIN resource_versions v"
        " ON v.res_type = k.column1 AND v.res_id = k.column2 AND v.version = k.column3",
        "rows",
    )


def visible_versions(
    tx: Tx, versions: Sequence[tuple[str, str, int]], visibility: Visibility
) -> set[tuple[str, str, int]]:
    """Which of these ``(type, id, version)`` rows ``visibility`` lets a caller see.

    One-by-one reads (read, vread, the sources of a golden Patient) ask this, so they are decided by exactly the
    predicate every search, count and include is filtered with. The keys are joined to the versions by their
    unique key (see :func:`version_keys_sql`), so the look-up costs one index probe per key on both backends.
    """
    if visibility.unscreened or not versions:
        return set(versions)
    seen, seen_params = visibility.rows("v")
    keys = list(dict.fromkeys(versions))
    found: set[tuple[str, str, int]] = set()
    step = len(keys) if tx.dialect == "postgresql" else _KEYS_PER_LOOKUP
    for start in range(0, len(keys), step):
        chunk = keys[start : start + step]
        source, form = version_keys_sql(tx.dialect, len(chunk))
        params: list[object]
        if form == "arrays":
            params = [[k[0] for k in chunk], [k[1] for k in chunk], [int(k[2]) for k in chunk]]
        else:
            params = [x for key in chunk for x in key]
        rows = tx.query(f"SELECT v.res_type, v.res_id, v.version FROM {source} WHERE {seen}", [*params, *seen_params])
        found.update((str(r[0]), str(r[1]), int(r[2])) for r in rows)
    return found
