"""The parsed form of a FHIR search: what the store compiles into SQL (frozen values, no SQL here)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from bcconnect.search._definitions import SearchParam


class Prefix(enum.Enum):
    """Comparison prefixes of date, number and quantity values (§3.1.1.4.4)."""

    EQ = "eq"
    NE = "ne"
    GT = "gt"
    LT = "lt"
    GE = "ge"
    LE = "le"
    SA = "sa"
    EB = "eb"
    AP = "ap"


@dataclass(frozen=True, slots=True)
class TokenValue:
    """``code`` (any system: ``system`` None), ``|code`` (no system: ``""``), ``system|code``, ``system|``."""

    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class StringValue:
    """A string value, normalised (case and accents folded) and as written (for ``:exact``)."""

    normalized: str
    exact: str


@dataclass(frozen=True, slots=True)
class DateValue:
    """A date value: its prefix and the ``[low, high)`` range (epoch ms) its precision covers."""

    prefix: Prefix
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """A reference: ``id`` (type None), ``Type/id``, or an absolute URL (kept in ``url``)."""

    type: str | None
    id: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class QuantityValue:
    """``[prefix]number[|system|code]``; ``low``/``high`` bound the number's implied precision."""

    prefix: Prefix
    value: Decimal
    low: Decimal
    high: Decimal
    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class UriValue:
    """A URI, compared exactly (or as a prefix with ``:below``)."""

    uri: str


Value = TokenValue | StringValue | DateValue | ReferenceValue | QuantityValue | UriValue


@dataclass(frozen=True, slots=True)
class Chain:
    """A chained search ``ref:Type.param=value``: the inner clause runs on ``types``."""

    types: tuple[str, ...]
    clauses: tuple[tuple[str, Clause], ...]


@dataclass(frozen=True, slots=True)
class Clause:
    """One parameter occurrence: its values are ORed; clauses are ANDed.

    ``modifier`` is None, ``not``, ``text``, ``exact``, ``contains``, ``below``, ``missing`` (``missing``
    carries ``missing_value``) or a resource type for references.
    """

    param: SearchParam
    modifier: str | None = None
    values: tuple[Value, ...] = ()
    missing_value: bool | None = None
    chain: Chain | None = None


@dataclass(frozen=True, slots=True)
class Include:
    """``_include=Source:param[:Target]`` or ``_revinclude`` of the same form, maybe ``:iterate``."""

    source_type: str
    param: SearchParam
    target_type: str | None
    iterate: bool


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``_sort`` key."""

    param: SearchParam
    descending: bool


class Summary(enum.Enum):
    """``_summary`` values we support."""

    TRUE = "true"
    FALSE = "false"
    COUNT = "count"
    DATA = "data"
    TEXT = "text"


class Total(enum.Enum):
    """``_total`` values."""

    NONE = "none"
    ESTIMATE = "estimate"
    ACCURATE = "accurate"


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed search on one resource type."""

    resource_type: str
    clauses: tuple[Clause, ...] = ()
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = 50
    total: Total | None = None
    summary: Summary | None = None
    elements: tuple[str, ...] | None = None
    #: parameters ignored because the request asked for lenient handling
    ignored: tuple[str, ...] = field(default=())
    #: the ignored occurrences as written (name, value): what the self link leaves out (§3.1.1.6)
    ignored_params: tuple[tuple[str, str], ...] = field(default=())

    def used(self, params: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """``params`` without the occurrences lenient handling ignored: the parameters the search applied."""
        dropped = set(self.ignored_params)
        return tuple(p for p in params if p not in dropped)
