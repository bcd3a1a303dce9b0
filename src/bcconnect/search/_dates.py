"""What a date search value matches: R4 search §3.1.1.4.4 (prefixes) over §3.1.1.5.2 (date ranges).

Both sides are half-open ranges of epoch milliseconds: the search value ``[pl, ph)`` is the whole of its
precision (``2020-03-14`` is that day, ``2020`` that year), and the target ``[rl, rh)`` is what the resource
holds (a date or dateTime its own precision, an instant its millisecond, a Period from the start of its start
to the end of its end, an open end unbounded).

| prefix | matches when | why |
| --- | --- | --- |
| ``eq`` | ``pl <= rl and rh <= ph`` | the search range fully contains the target |
| ``ne`` | not ``eq`` | |
| ``gt`` | ``rh > ph`` | the range above the search value overlaps the target |
| ``lt`` | ``rl < pl`` | the range below the search value overlaps the target |
| ``ge`` | ``rh > pl`` | the search value's range and everything above it overlaps the target |
| ``le`` | ``rl < ph`` | the search value's range and everything below it overlaps the target |
| ``sa`` | ``rl >= ph`` | the target starts after the search range |
| ``eb`` | ``rh <= pl`` | the target ends before the search range |
| ``ap`` | ``rl < ph + s and rh > pl - s`` | the target overlaps the value widened by ``s`` (see below) |

``s`` is a tenth of the value's distance from now, at least a day (the specification's recommendation).

``ge``/``le`` are "gt or eq" read over ranges: the target has some instant that, at the search value's
precision, equals or follows (precedes) it. So ``ge2024-03-14`` finds an overnight encounter from the 13th
22:00 to the 14th 02:00, exactly as ``gt2024-03-13`` does (the same instants at day precision), and
``le2024-03-14`` finds a period that starts at 10:00 on the 14th. The literal "above overlaps, or the value
contains the target" reading would miss both, and ``ge`` of a day would disagree with ``gt`` of the day before.
It also makes ``ge`` the exact complement of ``eb`` and ``le`` of ``sa``.

A :class:`DateCondition` is the rule as data (an OR of ANDs of bound comparisons), so the store compiles the
same rule into SQL that :func:`date_matches` evaluates here.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bcconnect.search._model import DateValue, Prefix

#: ``ap`` widens the value by a tenth of its distance from now (the specification's recommendation) …
APPROXIMATE_FRACTION = 10
#: … and by at least a day
APPROXIMATE_MINIMUM_MS = 86_400_000

Column = Literal["low", "high"]
Operator = Literal["<", "<=", ">", ">="]
_OPERATORS: dict[Operator, Callable[[int, int], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True, slots=True)
class Bound:
    """One comparison of the target range's ``low`` or ``high`` end with a value (epoch ms)."""

    column: Column
    op: Operator
    value: int

    def holds(self, low: int, high: int) -> bool:
        """Whether the target ``[low, high)`` satisfies this comparison."""
        return _OPERATORS[self.op](low if self.column == "low" else high, self.value)


@dataclass(frozen=True, slots=True)
class DateCondition:
    """Matches when any group of :class:`Bound` holds in full (negated when ``negate``)."""

    any_of: tuple[tuple[Bound, ...], ...]
    negate: bool = False

    def holds(self, low: int, high: int) -> bool:
        """Whether a target ``[low, high)`` matches."""
        found = any(all(b.holds(low, high) for b in group) for group in self.any_of)
        return found != self.negate


def date_condition(value: DateValue, *, now_ms: int | None = None) -> DateCondition:
    """The condition a target range must meet to match ``value`` (``now_ms``: the clock ``ap`` measures from).

    Some groups carry a comparison that the others already imply (``low < ph`` where ``high <= ph`` holds,
    since a range is never empty): it lets an index on ``low`` bound the scan from both sides.
    """
    pl, ph = value.low, value.high
    match value.prefix:
        case Prefix.EQ:
            return DateCondition(((Bound("low", ">=", pl), Bound("low", "<", ph), Bound("high", "<=", ph)),))
        case Prefix.NE:
            return DateCondition(((Bound("low", ">=", pl), Bound("high", "<=", ph)),), negate=True)
        case Prefix.GT:
            return DateCondition(((Bound("high", ">", ph),),))
        case Prefix.LT:
            return DateCondition(((Bound("low", "<", pl),),))
        case Prefix.GE:
            return DateCondition(((Bound("high", ">", pl),),))
        case Prefix.LE:
            return DateCondition(((Bound("low", "<", ph),),))
        case Prefix.SA:
            return DateCondition(((Bound("low", ">=", ph),),))
        case Prefix.EB:
            return DateCondition(((Bound("low", "<", pl), Bound("high", "<=", pl)),))
        case Prefix.AP:
            now = int(time.time() * 1000) if now_ms is None else now_ms
            slack = max(abs(now - pl) // APPROXIMATE_FRACTION, APPROXIMATE_MINIMUM_MS)
            return DateCondition(((Bound("low", "<", ph + slack), Bound("high", ">", pl - slack)),))


def date_matches(value: DateValue, low: int, high: int, *, now_ms: int | None = None) -> bool:
    """Whether a target covering ``[low, high)`` matches the search ``value``."""
    return date_condition(value, now_ms=now_ms).holds(low, high)
