"""Index extraction: the rows one resource contributes to each search index table.

Runs every supported parameter's expression over the parsed resource and turns what it reaches into typed
rows (HAPI FHIR's "one table per parameter type" layout). The store writes the rows beside the version that
produced them, in the same transaction.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from bcconnect.search._definitions import ParamType, registry
from bcconnect.search._values import MAX_TIME, MIN_TIME, date_range, normalize_string, token_hash

#: parameters answered from the resource row itself, not from index rows
ROW_PARAMS = frozenset({"_id"})
_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


@dataclass(slots=True)
class IndexRows:
    """Rows for each index table; the store adds the version key and resource type."""

    #: (param, system, code, hash_value, hash_sys_value, hash_sys, normalised display text)
    tokens: list[tuple[str, str | None, str | None, int, int, int, str | None]] = field(default_factory=list)
    #: (param, normalised value, exact value)
    strings: list[tuple[str, str, str]] = field(default_factory=list)
    #: (param, low, high) epoch milliseconds, high exclusive
    dates: list[tuple[str, int, int]] = field(default_factory=list)
    #: (param, target type, target id, reference as written)
    references: list[tuple[str, str | None, str | None, str]] = field(default_factory=list)
    #: (param, system, code, value)
    quantities: list[tuple[str, str | None, str | None, float]] = field(default_factory=list)
    #: (param, uri)
    uris: list[tuple[str, str]] = field(default_factory=list)
    #: ids of the Patients whose compartment holds the resource
    compartment: set[str] = field(default_factory=set)


def split_reference(ref: str) -> tuple[str | None, str | None]:
    """``Patient/1``, ``http://x/fhir/Patient/1`` or ``Patient/1/_history/2`` → ``("Patient", "1")``.

    >>> split_reference("https://example.org/fhir/Patient/p1/_history/3")
    ('Patient', 'p1')
    >>> split_reference("#contained")
    (None, None)
    """
    if ref.startswith("#") or "/" not in ref:
        return None, None
    parts = ref.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-2], parts[-1]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@functools.lru_cache(maxsize=1 << 16)
def _token_hashes(rtype: str, code_name: str, system: str | None, code: str | None) -> tuple[int, int, int]:
    """The three hashes of one token row (code alone, system|code, system alone); a region's data repeats a
    few thousand codes millions of times, so they are remembered (bounded)."""
    return (
        token_hash(rtype, code_name, None, code),
        token_hash(rtype, code_name, system or "", code),
        token_hash(rtype, code_name, system or "", None),
    )


def _add_token(rows: IndexRows, rtype: str, code_name: str, system: object, code: object, text: object) -> None:
    sys_s = system if isinstance(system, str) else None
    code_s = code if isinstance(code, str) else None
    if code_s is None and sys_s is None:
        if isinstance(text, str):
            rows.tokens.append((code_name, None, None, 0, 0, 0, normalize_string(text)))
        return
    rows.tokens.append(
        (
            code_name,
            sys_s,
            code_s,
            *_token_hashes(rtype, code_name, sys_s, code_s),
            normalize_string(text) if isinstance(text, str) else None,
        )
    )


def _tokens(rows: IndexRows, rtype: str, code: str, v: object) -> None:
    if isinstance(v, bool):
        _add_token(rows, rtype, code, None, "true" if v else "false", None)
    elif isinstance(v, str):
        _add_token(rows, rtype, code, None, v, None)
    elif isinstance(v, dict):
        if "coding" in v or ("text" in v and "value" not in v and "code" not in v):
            codings = v.get("coding") or []
            text = v.get("text")
            for coding in codings if isinstance(codings, list) else []:
                if isinstance(coding, dict):
                    display = text if isinstance(text, str) else coding.get("display")
                    _add_token(rows, rtype, code, coding.get("system"), coding.get("code"), display)
            if not codings and isinstance(text, str):
                _add_token(rows, rtype, code, None, None, text)
        elif "code" in v:  # Coding, Quantity
            _add_token(rows, rtype, code, v.get("system"), v.get("code"), v.get("display"))
        elif "value" in v:  # Identifier, ContactPoint
            type_text = v.get("type", {}).get("text") if isinstance(v.get("type"), dict) else None
            _add_token(rows, rtype, code, v.get("system"), v.get("value"), type_text)


def _strings(rows: IndexRows, rtype: str, code: str, v: object) -> None:
    values: list[str] = []
    if isinstance(v, str):
        values.append(v)
    elif isinstance(v, dict):
        for part in (*_NAME_PARTS, *_ADDRESS_PARTS):
            found = v.get(part)
            for item in found if isinstance(found, list) else [found]:
                if isinstance(item, str):
                    values.append(item)
    for value in dict.fromkeys(values):
        rows.strings.append((code, normalize_string(value)[:200], value[:200]))


def _dates(rows: IndexRows, rtype: str, code: str, v: object) -> None:
    if isinstance(v, str):
        found = date_range(v)
        if found:
            rows.dates.append((code, *found))
    elif isinstance(v, dict) and ("start" in v or "end" in v):
        start = date_range(v["start"]) if isinstance(v.get("start"), str) else None
        end = date_range(v["end"]) if isinstance(v.get("end"), str) else None
        rows.dates.append((code, start[0] if start else MIN_TIME, end[1] if end else MAX_TIME))


def _references(rows: IndexRows, rtype: str, code: str, v: object) -> None:
    ref = v.get("reference") if isinstance(v, dict) else v if isinstance(v, str) else None
    if isinstance(ref, str) and ref and not ref.startswith("#"):
        target_type, target_id = split_reference(ref)
        rows.references.append((code, target_type, target_id, ref))


def _quantities(rows: IndexRows, rtype: str, code: str, v: object) -> None:
    if isinstance(v, dict) and isinstance(v.get("value"), int | float):
        try:
            value = float(Decimal(str(v["value"])))
        except InvalidOperation:  # pragma: no cover - json numbers always convert
            return
        rows.quantities.append((code, _text(v.get("system")), _text(v.get("code")) or _text(v.get("unit")), value))


def _uris(rows: IndexRows, rtype: str, code: str, v: object) -> None:
    if isinstance(v, str):
        rows.uris.append((code, v))


_STEM = re.compile(r"^([a-z][a-z0-9]*?)[A-Z]")


def _present(resource: Mapping[str, object]) -> set[str]:
    """Top-level element names present, plus the stem of each choice element (valueQuantity → value)."""
    names = set(resource)
    for key in resource:
        match = _STEM.match(key)
        if match:
            names.add(match.group(1))
    return names


_Handler = Callable[[IndexRows, str, str, object], None]
_HANDLERS: dict[ParamType, _Handler] = {
    ParamType.TOKEN: _tokens,
    ParamType.STRING: _strings,
    ParamType.DATE: _dates,
    ParamType.REFERENCE: _references,
    ParamType.QUANTITY: _quantities,
    ParamType.URI: _uris,
}


@dataclass(frozen=True, slots=True)
class _Plan:
    """What extraction runs for one resource type: each indexed parameter with its evaluator and row maker."""

    params: tuple[tuple[str, frozenset[str], Callable[[Mapping[str, object]], list[object]], _Handler], ...]
    compartment: frozenset[str]


@functools.cache
def _plan(rtype: str) -> _Plan:
    reg = registry()
    params = tuple(
        (param.code, param.expression.first_names, param.expression.values, _HANDLERS[param.type])
        for param in reg.params(rtype).values()
        if param.code not in ROW_PARAMS and param.type in _HANDLERS
    )
    return _Plan(params, frozenset(reg.compartment.get(rtype, ())))


@functools.lru_cache(maxsize=4096)
def _present_of(keys: tuple[str, ...]) -> frozenset[str]:
    """Top-level names present in a resource with these keys, plus each choice element's stem (memoised: a
    region's resources come in a few hundred key sets)."""
    return frozenset(_present(dict.fromkeys(keys)))


def extract_index(resource: Mapping[str, object]) -> IndexRows:
    """Every index row of ``resource`` (parsed FHIR JSON) for the parameters of its type."""
    rtype = str(resource.get("resourceType"))
    plan = _plan(rtype)
    rows = IndexRows()
    present = _present_of(tuple(resource))
    for code, first_names, values, handler in plan.params:
        # skipping parameters whose first element is absent saves most of the work (Blaze does the same)
        if present.isdisjoint(first_names):
            continue
        for value in values(resource):
            handler(rows, rtype, code, value)
    compartment_params = plan.compartment
    for code, target_type, target_id, _ in rows.references:
        if target_type == "Patient" and target_id and code in compartment_params:
            rows.compartment.add(target_id)
    if rtype == "Patient" and isinstance(resource.get("id"), str):
        rows.compartment.add(str(resource["id"]))
    return rows
