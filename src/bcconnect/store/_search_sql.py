"""Compile a parsed :class:`~bcconnect.search.SearchQuery` clause into SQL over the index tables.

Every clause becomes one condition on the version row ``{alias}`` (``vid IN (…)``, ``NOT EXISTS (…)``), so
clauses AND together and the values inside one clause OR together. Only ``?`` placeholders carry values.
Date comparisons follow §3.1.1.4.4 with ranges: the resource covers ``[rl, rh)``, the value ``[pl, ph)``.
"""

# ruff: noqa: S608 - this module assembles SQL from fixed fragments; every value is a '?' parameter

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from bcconnect.errors import Unsupported
from bcconnect.search import (
    Clause,
    DateValue,
    ParamType,
    Prefix,
    QuantityValue,
    ReferenceValue,
    SortKey,
    StringValue,
    TokenValue,
    UriValue,
    date_condition,
    token_hash,
)
from bcconnect.store._visibility import Visibility

SQL = tuple[str, Sequence[object]]
_TABLE = {
    ParamType.TOKEN: "idx_token",
    ParamType.STRING: "idx_string",
    ParamType.DATE: "idx_date",
    ParamType.REFERENCE: "idx_reference",
    ParamType.QUANTITY: "idx_quantity",
    ParamType.NUMBER: "idx_quantity",
    ParamType.URI: "idx_uri",
}
#: above every valid UTF-8 sequence (byte order), so [prefix, prefix + _TOP) is a prefix range
_TOP = "\U0010ffff"


def valid_at(alias: str, at: int | None) -> SQL:
    """The condition "version ``alias`` is live at logical time ``at``" and its parameters.

    ``at=None`` means "now, in this transaction's snapshot": every visible version has ``t`` at or below the
    clock this snapshot sees, so live is simply "not superseded" and no clock lookup is needed.
    """
    if at is None:
        return f"{alias}.t_end IS NULL AND {alias}.deleted = 0", []
    return f"{alias}.t <= ? AND ({alias}.t_end IS NULL OR {alias}.t_end > ?) AND {alias}.deleted = 0", [at, at]


def type_match(alias: str, driven: bool) -> str:
    """``alias.res_type = ?``; when an index lookup drives the query, written so no index can serve it.

    Without statistics SQLite would otherwise walk every version of the type through the (res_type, …)
    index instead of starting from the few rows the driving index lookup finds.
    """
    return f"{alias}.res_type || '' = ?" if driven else f"{alias}.res_type = ?"


def like_escape(text: str) -> str:
    """Escape ``%``, ``_`` and the escape character for a LIKE pattern with ``ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _date_condition(v: DateValue) -> SQL:
    """The search package's date rule (:func:`~bcconnect.search.date_condition`) as SQL over ``low``/``high``."""
    rule = date_condition(v)
    groups: list[str] = []
    params: list[object] = []
    for group in rule.any_of:
        groups.append("(" + " AND ".join(f"{b.column} {b.op} ?" for b in group) + ")")
        params += [b.value for b in group]
    sql = groups[0] if len(groups) == 1 else "(" + " OR ".join(groups) + ")"
    return (f"NOT {sql}" if rule.negate else sql), params


def _quantity_condition(v: QuantityValue) -> SQL:
    value, low, high = float(v.value), float(v.low), float(v.high)
    params: list[object]
    match v.prefix:
        case Prefix.EQ:
            cond, params = "(value >= ? AND value < ?)", [low, high]
        case Prefix.NE:
            cond, params = "NOT (value >= ? AND value < ?)", [low, high]
        case Prefix.GT | Prefix.SA:
            cond, params = "value > ?", [value]
        case Prefix.LT | Prefix.EB:
            cond, params = "value < ?", [value]
        case Prefix.GE:
            cond, params = "value >= ?", [value]
        case Prefix.LE:
            cond, params = "value <= ?", [value]
        case Prefix.AP:
            slack = abs(float(v.value * Decimal("0.1")))
            cond, params = "(value >= ? AND value <= ?)", [value - slack, value + slack]
    if v.system is not None:
        cond += " AND system = ?"
        params.append(v.system)
    if v.code is not None:
        cond += " AND code = ?"
        params.append(v.code)
    return f"({cond})", params


def _token_condition(rtype: str, code: str, values: tuple[object, ...]) -> SQL:
    by_column: dict[str, list[object]] = {"hash_value": [], "hash_sys_value": [], "hash_sys": []}
    for v in values:
        assert isinstance(v, TokenValue)
        if v.code is None:
            by_column["hash_sys"].append(token_hash(rtype, code, v.system or "", None))
        elif v.system is None:
            by_column["hash_value"].append(token_hash(rtype, code, None, v.code))
        else:
            by_column["hash_sys_value"].append(token_hash(rtype, code, v.system, v.code))
    parts: list[str] = []
    params: list[object] = []
    for column, hashes in by_column.items():
        if hashes:
            parts.append(f"{column} IN ({','.join('?' * len(hashes))})")
            params += hashes
    return " OR ".join(parts), params


def _value_condition(clause: Clause, at: int | None, alias: str, visibility: Visibility) -> SQL:
    """The OR of the clause's values over one index table's columns (unqualified)."""
    ors: list[str] = []
    params: list[object] = []
    if clause.chain is not None:
        for target_type, inner in clause.chain.clauses:
            inner_alias = f"{alias}c"
            cond, inner_params = compile_clause(target_type, inner, inner_alias, at, driver=True, visibility=visibility)
            live, live_params = valid_at(inner_alias, at)
            # the chained resource must itself be visible: a withheld one can neither match nor be probed
            seen, seen_params = visibility.rows(inner_alias)
            inner_ids = (
                f"SELECT {inner_alias}.res_id FROM resource_versions {inner_alias}"
                f" WHERE {type_match(inner_alias, True)} AND {live} AND {seen} AND {cond}"
            )
            # what the chain found, and every id that answers as the same resource (a person's records)
            aliases = (
                "SELECT am.member_id FROM reference_alias aa JOIN reference_alias am"
                " ON am.res_type = aa.res_type AND am.canonical_id = aa.canonical_id"
                f" WHERE aa.res_type = ? AND aa.member_id IN ({inner_ids})"
            )
            ors.append(f"(target_type = ? AND (target_id IN ({inner_ids}) OR target_id IN ({aliases})))")
            found: list[object] = [target_type, *live_params, *seen_params, *inner_params]
            params += [target_type, *found, target_type, *found]
        return " OR ".join(ors), params
    for v in clause.values:
        if isinstance(v, StringValue):
            if clause.param.type is ParamType.TOKEN:  # :text
                ors.append("text LIKE ? ESCAPE '\\'")
                params.append(like_escape(v.normalized) + "%")
            elif clause.modifier == "exact":
                ors.append("exact = ?")
                params.append(v.exact)
            elif clause.modifier == "contains":
                ors.append("norm LIKE ? ESCAPE '\\'")
                params.append("%" + like_escape(v.normalized) + "%")
            else:
                ors.append("(norm >= ? AND norm < ?)")
                params += [v.normalized, v.normalized + _TOP]
        elif isinstance(v, DateValue):
            cond, extra = _date_condition(v)
            ors.append(cond)
            params += extra
        elif isinstance(v, QuantityValue):
            cond, extra = _quantity_condition(v)
            ors.append(cond)
            params += extra
        elif isinstance(v, UriValue):
            if clause.modifier == "below":
                ors.append("(uri >= ? AND uri < ?)")
                params += [v.uri, v.uri + _TOP]
            else:
                ors.append("uri = ?")
                params.append(v.uri)
        elif isinstance(v, ReferenceValue):
            if v.url is not None:
                ors.append("(url = ? OR (target_type = ? AND target_id = ?))")
                params += [v.url, v.type, v.id]
            elif v.type is not None:
                ors.append("(target_type = ? AND target_id = ?)")
                params += [v.type, v.id]
            else:
                ors.append("target_id = ?")
                params.append(v.id)
    return " OR ".join(ors), params


def driver_rank(clause: Clause) -> int:
    """How well a clause can drive the search from its index (lower: more selective); 99: cannot drive."""
    kind, modifier = clause.param.type, clause.modifier
    if clause.param.code == "_id" or modifier in ("not", "missing", "text", "contains"):
        return 99
    if clause.chain is not None:
        return 4
    if kind is ParamType.TOKEN:
        return 5 if all(isinstance(v, TokenValue) and v.code is None for v in clause.values) else 1
    return {
        ParamType.REFERENCE: 1,
        ParamType.STRING: 2 if modifier == "exact" else 3,
        ParamType.URI: 3,
        ParamType.QUANTITY: 6,
        ParamType.NUMBER: 6,
        ParamType.DATE: 7,
    }[kind]


def compile_clause(
    rtype: str, clause: Clause, alias: str, at: int | None, *, driver: bool, visibility: Visibility
) -> SQL:
    """A condition on version row ``alias`` for ``clause`` at logical time ``at`` (None: now).

    The ``driver`` clause is written ``vid IN (index lookup)`` so the database starts from its index; the
    others are correlated ``EXISTS`` probes of the candidates (cheap through the ``(vid, param)`` indexes).
    On an element a restricted patient hides, that patient's rows behave as if the element were absent.
    """
    cond, params = _compile_clause(rtype, clause, alias, at, driver=driver, visibility=visibility)
    if not visibility.hides_param(rtype, clause.param.code):
        return cond, params
    restricted, restricted_params = visibility.restricted_row(alias)
    if clause.modifier == "not" or (clause.modifier == "missing" and clause.missing_value):
        return f"(({cond}) OR {restricted})", [*params, *restricted_params]
    return f"(({cond}) AND NOT {restricted})", [*params, *restricted_params]


def _compile_clause(
    rtype: str, clause: Clause, alias: str, at: int | None, *, driver: bool, visibility: Visibility
) -> SQL:
    param = clause.param
    if param.code == "_id":
        if clause.modifier == "missing":
            return ("1 = 0", []) if clause.missing_value else ("1 = 1", [])
        ids = [v.code for v in clause.values if isinstance(v, TokenValue) and v.code is not None]
        negate = "NOT " if clause.modifier == "not" else ""
        return f"{alias}.res_id {negate}IN ({','.join('?' * len(ids))})", list(ids)
    table = _TABLE[param.type]
    if clause.modifier == "missing":
        exists = "NOT EXISTS" if clause.missing_value else "EXISTS"
        return f"{exists} (SELECT 1 FROM {table} x WHERE x.vid = {alias}.vid AND x.param = ?)", [param.code]
    hashed = param.type is ParamType.TOKEN and clause.modifier != "text"
    if hashed:
        cond, params = _token_condition(rtype, param.code, clause.values)
    else:
        cond, params = _value_condition(clause, at, alias, visibility)
    if driver:
        if hashed:
            return f"{alias}.vid IN (SELECT vid FROM idx_token WHERE {cond})", params
        sub = f"SELECT vid FROM {table} WHERE res_type = ? AND param = ? AND ({cond})"
        return f"{alias}.vid IN ({sub})", [rtype, param.code, *params]
    exists = "NOT EXISTS" if clause.modifier == "not" else "EXISTS"
    probe = f"SELECT 1 FROM {table} x WHERE x.vid = {alias}.vid AND x.param = ? AND ({cond})"
    return f"{exists} ({probe})", [param.code, *params]


def sort_expression(key: SortKey, alias: str, rtype: str, visibility: Visibility) -> SQL:
    """An ORDER BY expression for one key (missing values sort last in both directions).

    A restricted patient's hidden element sorts as missing, so the order reveals nothing of it.
    """
    param = key.param
    params: list[object]
    if param.code == "_id":
        expr, params = f"{alias}.res_id", []
    elif param.code == "_lastUpdated":
        expr, params = f"{alias}.last_updated", []
    else:
        column = {
            ParamType.TOKEN: "code",
            ParamType.STRING: "norm",
            ParamType.DATE: "high" if key.descending else "low",
            ParamType.REFERENCE: "target_id",
            ParamType.QUANTITY: "value",
            ParamType.NUMBER: "value",
            ParamType.URI: "uri",
        }[param.type]
        agg = "MAX" if key.descending else "MIN"
        table = _TABLE[param.type]
        expr = f"(SELECT {agg}({column}) FROM {table} s WHERE s.vid = {alias}.vid AND s.param = ?)"
        params = [param.code]
        if visibility.hides_param(rtype, param.code):
            restricted, restricted_params = visibility.restricted_row(alias)
            expr = f"(CASE WHEN {restricted} THEN NULL ELSE {expr} END)"
            params = [*restricted_params, *params]
    direction = "DESC" if key.descending else "ASC"
    return f"({expr}) IS NULL, {expr} {direction}", params * 2


def check_supported(clause: Clause) -> None:
    """Refuse combinations the SQL cannot express (defensive: the parser already refuses most)."""
    if clause.modifier == "not" and clause.param.type is not ParamType.TOKEN:
        raise Unsupported(f":not is not supported on {clause.param.type.value} parameter {clause.param.code}")
