"""Parse a FHIR search query string into a :class:`SearchQuery` (FHIR R4 §3.1.1).

OR by commas, AND by repetition; ``\\,`` ``\\|`` ``\\$`` ``\\\\`` escapes; prefixes on date and quantity;
modifiers per parameter type; one level of chaining; the result parameters ``_count _sort _include
_revinclude _total _summary _elements``. Unknown parameters are a 400 (:class:`Unsupported`) unless the
request asked for lenient handling, in which case they are listed in ``SearchQuery.ignored``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from bcconnect.errors import InvalidRequest, Unsupported
from bcconnect.search._definitions import ParamType, SearchParam, registry
from bcconnect.search._extract import split_reference
from bcconnect.search._model import (
    Chain,
    Clause,
    DateValue,
    Include,
    Prefix,
    QuantityValue,
    ReferenceValue,
    SearchQuery,
    SortKey,
    StringValue,
    Summary,
    TokenValue,
    Total,
    UriValue,
    Value,
)
from bcconnect.search._values import date_range, normalize_string, number_range

E = TypeVar("E", Summary, Total)

#: parameters the API handles itself (formatting, paging); the parser skips them
TRANSPORT_PARAMS = frozenset({"_format", "_pretty", "_page_token"})
_MODIFIERS: dict[ParamType, frozenset[str]] = {
    ParamType.TOKEN: frozenset({"not", "text", "missing"}),
    ParamType.STRING: frozenset({"exact", "contains", "missing"}),
    ParamType.DATE: frozenset({"missing"}),
    ParamType.REFERENCE: frozenset({"missing"}),
    ParamType.QUANTITY: frozenset({"missing"}),
    ParamType.URI: frozenset({"missing", "below"}),
    ParamType.NUMBER: frozenset({"missing"}),
}
_PREFIXED = (ParamType.DATE, ParamType.QUANTITY, ParamType.NUMBER)


def split_escaped(text: str, separator: str) -> list[str]:
    r"""Split at unescaped ``separator``; escapes stay in place for the next split.

    >>> split_escaped(r"a\,b,c", ",")
    ['a\\,b', 'c']
    """
    if "\\" not in text:
        return text.split(separator)
    parts, current, i = [], "", 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            current += text[i : i + 2]
            i += 2
            continue
        if char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
        i += 1
    parts.append(current)
    return parts


def unescape(text: str) -> str:
    r"""Remove search escapes.

    >>> unescape(r"a\,b\|c\\d")
    'a,b|c\\d'
    """
    if "\\" not in text:
        return text
    out, i = "", 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out += text[i + 1]
            i += 2
        else:
            out += text[i]
            i += 1
    return out


def _prefix(raw: str) -> tuple[Prefix, str]:
    head = raw[:2]
    if len(raw) > 2 and head in {p.value for p in Prefix} and not head[0].isdigit():
        return Prefix(head), raw[2:]
    return Prefix.EQ, raw


def _value(param: SearchParam, raw: str, name: str) -> Value:
    kind = param.type
    if kind is ParamType.TOKEN:
        parts = split_escaped(raw, "|")
        if len(parts) == 1:
            return TokenValue(None, unescape(parts[0]) or None)
        if len(parts) == 2:
            return TokenValue(unescape(parts[0]), unescape(parts[1]) or None)
        raise InvalidRequest(f"{name}: a token is code, system|code, |code or system|; got {raw!r}", expression=[name])
    if kind is ParamType.STRING:
        text = unescape(raw)
        return StringValue(normalize_string(text), text)
    if kind is ParamType.DATE:
        prefix, rest = _prefix(raw)
        found = date_range(rest)
        if found is None:
            raise InvalidRequest(f"{name}: {raw!r} is not a FHIR date, dateTime or instant", expression=[name])
        return DateValue(prefix, *found)
    if kind is ParamType.REFERENCE:
        text = unescape(raw)
        if "/" in text:
            rtype, rid = split_reference(text)
            if not rtype or not rid:
                raise InvalidRequest(f"{name}: {raw!r} is not a reference", expression=[name])
            url = text if "://" in text else None
            return ReferenceValue(rtype, rid, url)
        return ReferenceValue(None, text)
    if kind in (ParamType.QUANTITY, ParamType.NUMBER):
        prefix, rest = _prefix(raw)
        parts = [unescape(p) for p in split_escaped(rest, "|")]
        number = number_range(parts[0])
        if number is None or len(parts) not in (1, 3):
            raise InvalidRequest(f"{name}: {raw!r} is not [prefix]number[|system|code]", expression=[name])
        system = parts[1] or None if len(parts) == 3 else None
        code = parts[2] or None if len(parts) == 3 else None
        return QuantityValue(prefix, *number, system=system, code=code)
    return UriValue(unescape(raw))


def _clause(resource_type: str, name: str, raw: str) -> Clause:
    code, _, modifier = name.partition(":")
    if "." in code or "." in modifier:
        return _chained(resource_type, name, raw)
    reg = registry()
    param = reg.param(resource_type, code)
    if param is None:
        raise Unsupported(f"{resource_type} has no search parameter {code!r}", expression=[name])
    if modifier and param.type is ParamType.REFERENCE and modifier in param.targets:
        values = tuple(_value(param, v, name) for v in split_escaped(raw, ","))
        typed = tuple(
            ReferenceValue(modifier, v.id, v.url) if isinstance(v, ReferenceValue) and v.type is None else v
            for v in values
        )
        return Clause(param, modifier, typed)
    if modifier and modifier not in _MODIFIERS[param.type]:
        raise Unsupported(f"modifier :{modifier} is not supported on {param.type.value} parameter {code}")
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise InvalidRequest(f"{name}: expected true or false, got {raw!r}", expression=[name])
        return Clause(param, "missing", missing_value=raw == "true")
    if modifier == "text":
        texts = tuple(StringValue(normalize_string(unescape(v)), unescape(v)) for v in split_escaped(raw, ","))
        return Clause(param, "text", texts)
    values = tuple(_value(param, v, name) for v in split_escaped(raw, ",") if v != "")
    if not values:
        raise InvalidRequest(f"{name}: a value is required", expression=[name])
    return Clause(param, modifier or None, values)


def _chained(resource_type: str, name: str, raw: str) -> Clause:
    head, _, rest = name.partition(".")
    if "." in rest:
        raise Unsupported(f"{name}: only one level of chaining is supported", expression=[name])
    code, _, type_modifier = head.partition(":")
    reg = registry()
    param = reg.param(resource_type, code)
    if param is None or param.type is not ParamType.REFERENCE:
        raise Unsupported(f"{resource_type} has no reference parameter {code!r} to chain", expression=[name])
    candidates = (type_modifier,) if type_modifier else param.targets
    inner = []
    for target in candidates:
        if target not in reg.by_type:
            continue
        target_code = rest.partition(":")[0]
        if reg.param(target, target_code) is not None:
            inner.append((target, _clause(target, rest, raw)))
    if not inner:
        raise Unsupported(f"{name}: no target type of {code} has parameter {rest!r}", expression=[name])
    return Clause(param, type_modifier or None, chain=Chain(tuple(t for t, _ in inner), tuple(inner)))


def _include(resource_type: str, name: str, raw: str, *, reverse: bool) -> Include:
    iterate = name.endswith(":iterate") or name.endswith(":recurse")
    parts = raw.split(":")
    if len(parts) not in (2, 3):
        raise InvalidRequest(f"{name}: expected Source:param[:Target], got {raw!r}", expression=[name])
    source = parts[0]
    if not reverse and not iterate and source != resource_type:
        raise InvalidRequest(f"{name}: {raw!r} must start with {resource_type}", expression=[name])
    param = registry().param(source, parts[1])
    if param is None or param.type is not ParamType.REFERENCE:
        raise Unsupported(f"{name}: {source} has no reference parameter {parts[1]!r}", expression=[name])
    target = parts[2] if len(parts) == 3 else None
    return Include(source, param, target, iterate)


#: the largest integer any request parameter may carry (a signed 64-bit column holds it)
MAX_REQUEST_INTEGER = 2**63 - 1
_ASCII_DIGITS = frozenset("0123456789")


def parse_non_negative(raw: str, name: str, *, maximum: int = MAX_REQUEST_INTEGER) -> int:
    """A request integer: ASCII digits only (``str.isdigit`` also accepts '²' and other Unicode digits that
    ``int`` refuses), at most ``maximum`` (larger values clamp, so no database column can overflow).

    >>> parse_non_negative("20", "_count", maximum=10)
    10
    >>> parse_non_negative("99999999999999999999", "_getpagesoffset") == 2**63 - 1
    True
    >>> parse_non_negative("\u00b2", "_count")
    Traceback (most recent call last):
    bcconnect.errors.InvalidRequest: _count: expected a non-negative integer, got '²'
    """
    if not raw or not _ASCII_DIGITS.issuperset(raw) or len(raw) > 4300:
        raise InvalidRequest(f"{name}: expected a non-negative integer, got {raw[:40]!r}", expression=[name])
    return min(int(raw), maximum)


def _count(raw: str, maximum: int) -> int:
    return parse_non_negative(raw, "_count", maximum=maximum)


def _sort(resource_type: str, raw: str) -> tuple[SortKey, ...]:
    keys = []
    for item in raw.split(","):
        descending = item.startswith("-")
        code = item.lstrip("-")
        param = registry().param(resource_type, code)
        if param is None:
            raise Unsupported(f"_sort: {resource_type} has no search parameter {code!r}", expression=["_sort"])
        keys.append(SortKey(param, descending))
    return tuple(keys)


def _enum(kind: type[E], name: str, raw: str) -> E:
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise InvalidRequest(f"{name}: expected one of {allowed}, got {raw!r}", expression=[name]) from None


def _localised(clause: Clause, base: str) -> Clause:
    """``clause`` with absolute references to ``base`` made relative.

    >>> from bcconnect.search._definitions import registry
    >>> subject = registry().param("Observation", "subject")
    >>> here = Clause(subject, None, (ReferenceValue("Patient", "p1", "http://x/fhir/Patient/p1"),))
    >>> _localised(here, "http://x/fhir").values
    (ReferenceValue(type='Patient', id='p1', url=None),)
    >>> _localised(here, "http://elsewhere/fhir").values == here.values
    True
    """
    if clause.param.type is not ParamType.REFERENCE or not clause.values:
        return clause
    prefix = base.rstrip("/") + "/"
    values = tuple(
        ReferenceValue(v.type, v.id, None)
        if isinstance(v, ReferenceValue) and v.url is not None and v.url.startswith(prefix)
        and v.url[len(prefix) :].count("/") == 1
        else v
        for v in clause.values
    )  # fmt: skip
    return replace(clause, values=values)


def parse_search(
    resource_type: str,
    params: Sequence[tuple[str, str]],
    *,
    default_count: int = 50,
    max_count: int = 1000,
    lenient: bool = False,
    local_base: str | None = None,
) -> SearchQuery:
    """Parse ``params`` (decoded name/value pairs, in order) for a search on ``resource_type``.

    ``local_base`` is this server's base URL: a reference value under it names a resource here, so it matches
    exactly what the relative form matches (aliases of a person included).
    """
    if resource_type not in registry().by_type:
        raise Unsupported(f"resource type {resource_type!r} is not served here")
    clauses: list[Clause] = []
    includes: list[Include] = []
    revincludes: list[Include] = []
    ignored: list[str] = []
    ignored_params: list[tuple[str, str]] = []
    options: dict[str, object] = {}
    for name, raw in params:
        try:
            if name in TRANSPORT_PARAMS:
                continue
            if name == "_count":
                options["count"] = _count(raw, max_count)
            elif name == "_sort":
                options["sort"] = _sort(resource_type, raw)
            elif name == "_total":
                options["total"] = _enum(Total, name, raw)
            elif name == "_totalMethod":
                # not R4: a vendor hint (Aidbox) that fhirpy's count() sends; honoured as _total
                options.setdefault("total", Total.ESTIMATE if raw == "estimate" else Total.ACCURATE)
            elif name == "_summary":
                options["summary"] = _enum(Summary, name, raw)
            elif name == "_elements":
                options["elements"] = tuple(e.strip() for e in raw.split(",") if e.strip())
            elif name.startswith("_include"):
                includes.append(_include(resource_type, name, raw, reverse=False))
            elif name.startswith("_revinclude"):
                revincludes.append(_include(resource_type, name, raw, reverse=True))
            else:
                clauses.append(_clause(resource_type, name, raw))
        except Unsupported:
            if not lenient:
                raise
            ignored.append(name)
            ignored_params.append((name, raw))
    count = options.get("count", default_count)
    assert isinstance(count, int)
    if local_base:
        clauses = [_localised(clause, local_base) for clause in clauses]
    return SearchQuery(
        resource_type=resource_type,
        clauses=tuple(clauses),
        includes=tuple(includes),
        revincludes=tuple(revincludes),
        sort=options.get("sort", ()),  # type: ignore[arg-type]
        count=count,
        total=options.get("total"),  # type: ignore[arg-type]
        summary=options.get("summary"),  # type: ignore[arg-type]
        elements=options.get("elements"),  # type: ignore[arg-type]
        ignored=tuple(ignored),
        ignored_params=tuple(ignored_params),
    )
