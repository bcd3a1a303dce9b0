"""Date search semantics per prefix (R4 search §3.1.1.4.4 over the ranges of §3.1.1.5.2), for every kind of
target a date parameter meets: a Period, a dateTime at each precision, and an instant.

Each case indexes a real resource with :func:`extract_index`, parses the search value with
:func:`parse_search` and asks :func:`date_matches`, the rule the store compiles into SQL (a property test in
``tests/unit/store/test_date_semantics.py`` keeps the SQL equal to it).
"""

from __future__ import annotations

from typing import Any

import pytest

from bcconnect.search import DateValue, Prefix, date_condition, date_matches, extract_index, parse_search

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: `ap` measures its slack from a fixed clock here


def _value(resource_type: str, param: str, written: str) -> DateValue:
    clause = parse_search(resource_type, [(param, written)]).clauses[0]
    value = clause.values[0]
    assert isinstance(value, DateValue)
    return value


def matches(resource: dict[str, Any], param: str, written: str) -> bool:
    """Whether ``resource`` is found by ``param=written``."""
    rows = [(low, high) for name, low, high in extract_index(resource).dates if name == param]
    assert rows, f"{param} indexes nothing in {resource}"
    value = _value(resource["resourceType"], param, written)
    return any(date_matches(value, low, high, now_ms=NOW_MS) for low, high in rows)


def encounter(start: str | None, end: str | None) -> dict[str, Any]:
    period = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    return {"resourceType": "Encounter", "id": "e", "status": "finished", "class": {"code": "AMB"}, "period": period}


def observation(**effective: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"}, **effective}


#: an overnight stay: 13 March 22:00 to 14 March 02:00 (UTC)
OVERNIGHT = encounter("2024-03-13T22:00:00Z", "2024-03-14T02:00:00Z")
#: three days: starts late on the 12th, ends mid-morning on the 14th
THREE_DAYS = encounter("2024-03-12T16:30:00Z", "2024-03-14T10:15:00Z")
#: still open: started on the 12th, no end
ONGOING = encounter("2024-03-12T09:00:00Z", None)
#: the end at day precision covers that whole day
DAY_PERIOD = encounter("2024-03-12", "2024-03-14")

PERIOD_CASES = [
    # eq: the search range fully contains the period
    (THREE_DAYS, "eq2024-03", True),
    (THREE_DAYS, "eq2024-03-14", False),
    (OVERNIGHT, "2024-03-13", False),
    (DAY_PERIOD, "eq2024-03-12", False),
    # ne: the search range does not fully contain it
    (THREE_DAYS, "ne2024-03", False),
    (THREE_DAYS, "ne2024-03-14", True),
    # gt / lt: the range above / below the value overlaps the period
    (THREE_DAYS, "gt2024-03-13", True),
    (THREE_DAYS, "gt2024-03-14", False),
    (THREE_DAYS, "lt2024-03-13", True),
    (THREE_DAYS, "lt2024-03-12", False),
    (ONGOING, "gt2030-01-01", True),
    (ONGOING, "lt2024-03-12", False),
    # ge / le at day precision: a period that ends (starts) during that day is found
    (THREE_DAYS, "ge2024-03-14", True),
    (THREE_DAYS, "le2024-03-12", True),
    (OVERNIGHT, "ge2024-03-14", True),
    (OVERNIGHT, "le2024-03-13", True),
    (THREE_DAYS, "ge2024-03-15", False),
    (THREE_DAYS, "le2024-03-11", False),
    (DAY_PERIOD, "ge2024-03-14", True),
    (DAY_PERIOD, "le2024-03-12", True),
    (ONGOING, "ge2099-12-31", True),
    # ge / le at second precision: the end's own second (10:15:00 covers up to 10:15:01) still counts
    (THREE_DAYS, "ge2024-03-14T10:15:01Z", False),
    (THREE_DAYS, "ge2024-03-14T10:15:00Z", True),
    (THREE_DAYS, "le2024-03-12T16:30:00Z", True),
    (THREE_DAYS, "le2024-03-12T16:29:59Z", False),
    # sa / eb: the period starts after / ends before the search range
    (THREE_DAYS, "sa2024-03-11", True),
    (THREE_DAYS, "sa2024-03-12", False),
    (THREE_DAYS, "eb2024-03-15", True),
    (THREE_DAYS, "eb2024-03-14", False),
    (ONGOING, "eb2099-01-01", False),
    # ap: the period overlaps the value widened by 10% of its distance from now
    (THREE_DAYS, "ap2024-03-20", True),
    (THREE_DAYS, "ap2021-01-01", False),
]


@pytest.mark.parametrize(("resource", "written", "expected"), PERIOD_CASES)
def test_a_period_is_compared_as_its_range(resource: dict[str, Any], written: str, expected: bool) -> None:
    """Encounter.period: every prefix over periods, at day, month and instant precision."""
    assert matches(resource, "date", written) is expected, f"{resource['period']} date={written}"


#: dateTime values at each precision, each with the search values that must and must not find it (per prefix)
DATETIME_CASES: dict[str, list[tuple[str, bool]]] = {
    # a year is the whole year
    "2024": [
        ("eq2024", True),
        ("eq2024-06", False),
        ("ne2024-06", True),
        ("gt2023", True),
        ("gt2024", False),
        ("lt2025", True),
        ("lt2024-12", True),
        ("ge2024-12-31", True),
        ("ge2025", False),
        ("le2024-01-01", True),
        ("le2023", False),
        ("sa2023", True),
        ("sa2024-01", False),
        ("eb2025", True),
        ("eb2024-12", False),
        ("ap2024-07", True),
        ("ap2020", False),
    ],
    # a month is the whole month
    "2024-03": [
        ("eq2024-03", True),
        ("eq2024-03-14", False),
        ("ne2024-03-14", True),
        ("gt2024-02", True),
        ("gt2024-03", False),
        ("lt2024-04", True),
        ("lt2024-03", False),
        ("ge2024-03-31", True),
        ("ge2024-04-01", False),
        ("le2024-03-01", True),
        ("le2024-02-29", False),
        ("sa2024-02", True),
        ("eb2024-04", True),
        ("eb2024-03-31", False),
    ],
    # a day is the whole day
    "2024-03-14": [
        ("2024-03-14", True),
        ("eq2024-03-14T10:00", False),
        ("ne2024-03-13", True),
        ("ne2024-03-14", False),
        ("gt2024-03-14T10:00", True),
        ("gt2024-03-14", False),
        ("lt2024-03-14T10:00", True),
        ("lt2024-03-14", False),
        ("ge2024-03-14", True),
        ("ge2024-03-15", False),
        ("le2024-03-14", True),
        ("le2024-03-13", False),
        ("sa2024-03-13", True),
        ("sa2024-03-14", False),
        ("eb2024-03-15", True),
        ("eb2024-03-14", False),
    ],
    # to the second, with a zone: the instant's second (14 March 10:30:15 in UTC+01:00 is 09:30:15Z)
    "2024-03-14T10:30:15+01:00": [
        ("eq2024-03-14", True),
        ("eq2024-03-14T09:30Z", True),
        ("eq2024-03-14T10:30Z", False),
        ("ne2024-03-14T09:30Z", False),
        ("gt2024-03-14T09:30:14Z", True),
        ("gt2024-03-14T09:30:15Z", False),
        ("lt2024-03-14T09:30:16Z", True),
        ("lt2024-03-14T09:30:15Z", False),
        ("ge2024-03-14T09:30:15Z", True),
        ("ge2024-03-14T09:31Z", False),
        ("le2024-03-14T09:30:15Z", True),
        ("le2024-03-14T09:30:14Z", False),
        ("sa2024-03-14T09:30Z", False),
        ("sa2024-03-14T09:29Z", True),
        ("eb2024-03-14T09:31Z", True),
    ],
    # fractional seconds: the stated precision
    "2024-03-14T09:30:15.250Z": [
        ("eq2024-03-14T09:30:15Z", True),
        ("gt2024-03-14T09:30:15.249Z", True),
        ("gt2024-03-14T09:30:15.250Z", False),
        ("ge2024-03-14T09:30:15.250Z", True),
        ("le2024-03-14T09:30:15.250Z", True),
        ("lt2024-03-14T09:30:15.250Z", False),
        ("eb2024-03-14T09:30:15.251Z", True),
        ("sa2024-03-14T09:30:15.249Z", True),
        ("ne2024-03-14T09:30:15.250Z", False),
    ],
}


@pytest.mark.parametrize(
    ("stored", "written", "expected"),
    [(stored, written, expected) for stored, cases in DATETIME_CASES.items() for written, expected in cases],
)
def test_a_datetime_is_the_range_of_its_precision(stored: str, written: str, expected: bool) -> None:
    """Observation.effectiveDateTime at year, month, day, second and millisecond precision."""
    assert matches(observation(effectiveDateTime=stored), "date", written) is expected, f"{stored} date={written}"


INSTANT = "2024-03-14T09:30:15.123Z"
INSTANT_CASES = [
    ("eq2024-03-14", True),
    ("eq2024-03-14T09:30:15.123Z", True),
    ("ne2024-03-14T09:30:15Z", False),
    ("ne2024-03-15", True),
    ("gt2024-03-14T09:30:15.122Z", True),
    ("gt2024-03-14T09:30:15Z", False),
    ("lt2024-03-14T09:30:15.124Z", True),
    ("lt2024-03-14T09:30:15Z", False),
    ("ge2024-03-14T09:30:15Z", True),
    ("ge2024-03-14T09:30:16Z", False),
    ("le2024-03-14T09:30:15Z", True),
    ("le2024-03-14T09:30:14Z", False),
    ("sa2024-03-14T09:30:14Z", True),
    ("sa2024-03-14T09:30:15Z", False),
    ("eb2024-03-14T09:30:16Z", True),
    ("eb2024-03-14T09:30:15Z", False),
    ("ap2024-03-14", True),
    ("ap2024-06-01", False),
]


@pytest.mark.parametrize(("written", "expected"), INSTANT_CASES)
def test_an_instant_is_its_millisecond(written: str, expected: bool) -> None:
    """Observation.effectiveInstant and meta.lastUpdated (_lastUpdated) are instants."""
    assert matches(observation(effectiveInstant=INSTANT), "date", written) is expected, written
    updated = {**observation(effectiveDateTime="2020"), "meta": {"lastUpdated": INSTANT}}
    assert matches(updated, "_lastUpdated", written) is expected, written


@pytest.mark.parametrize("day", ["2024-03-13", "2024-03-14"])
def test_ge_of_a_day_agrees_with_gt_of_the_day_before(day: str) -> None:
    """At day precision ``ge D`` and ``gt D-1`` name the same instants, so they find the same periods."""
    before = {"2024-03-13": "2024-03-12", "2024-03-14": "2024-03-13"}[day]
    for resource in (OVERNIGHT, THREE_DAYS, ONGOING, DAY_PERIOD):
        assert matches(resource, "date", f"ge{day}") == matches(resource, "date", f"gt{before}")
        assert matches(resource, "date", f"le{before}") == matches(resource, "date", f"lt{day}")


def test_ge_and_le_are_the_complements_of_eb_and_sa() -> None:
    """A target either ends before the value or reaches it; either starts after it or reaches it."""
    for resource in (OVERNIGHT, THREE_DAYS, ONGOING, DAY_PERIOD):
        for day in ("2024-03-11", "2024-03-12", "2024-03-13", "2024-03-14", "2024-03-15"):
            assert matches(resource, "date", f"ge{day}") != matches(resource, "date", f"eb{day}")
            assert matches(resource, "date", f"le{day}") != matches(resource, "date", f"sa{day}")


def test_every_prefix_has_a_rule() -> None:
    """No prefix falls through: each gives a condition with at least one comparison."""
    value = _value("Observation", "date", "2024-03-14")
    for prefix in Prefix:
        rule = date_condition(DateValue(prefix, value.low, value.high), now_ms=NOW_MS)
        assert rule.any_of, prefix
        assert all(rule.any_of), prefix
