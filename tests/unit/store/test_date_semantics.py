"""Date prefixes compiled to SQL agree with the search package's rule (R4 §3.1.1.4.4 over ranges), for any
ranges; the rule itself is pinned case by case in ``tests/unit/search/test_date_prefixes.py``."""

from __future__ import annotations

import sqlite3

from hypothesis import given
from hypothesis import strategies as st

from bcconnect.search import DateValue, Prefix, date_matches
from bcconnect.store._search_sql import _date_condition

RANGES = st.tuples(st.integers(0, 40), st.integers(1, 12)).map(lambda t: (t[0], t[0] + t[1]))


def expected(prefix: Prefix, pl: int, ph: int, rl: int, rh: int) -> bool:
    """The prefixes written out over ranges, independently of the rule under test."""
    eq = pl <= rl and rh <= ph
    return {
        Prefix.EQ: eq,
        Prefix.NE: not eq,
        Prefix.GT: rh > ph,
        Prefix.LT: rl < pl,
        Prefix.GE: rh > pl,
        Prefix.LE: rl < ph,
        Prefix.SA: rl >= ph,
        Prefix.EB: rh <= pl,
    }[prefix]


@given(
    prefix=st.sampled_from([p for p in Prefix if p is not Prefix.AP]),
    value=RANGES,
    rows=st.lists(RANGES, min_size=1, max_size=12),
)
def test_prefixes_match_the_specification(prefix: Prefix, value: tuple[int, int], rows: list[tuple[int, int]]) -> None:
    """For every stored range, the SQL condition holds exactly when the rule says it matches."""
    cond, params = _date_condition(DateValue(prefix, *value))
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE idx (n INTEGER, low INTEGER, high INTEGER)")
    db.executemany("INSERT INTO idx VALUES (?, ?, ?)", [(i, lo, hi) for i, (lo, hi) in enumerate(rows)])
    found = {n for (n,) in db.execute(f"SELECT n FROM idx WHERE {cond}", list(params))}  # noqa: S608 - test
    assert found == {i for i, (lo, hi) in enumerate(rows) if expected(prefix, *value, lo, hi)}
    assert found == {i for i, (lo, hi) in enumerate(rows) if date_matches(DateValue(prefix, *value), lo, hi)}


@given(value=RANGES, rows=st.lists(RANGES, min_size=1, max_size=12))
def test_ap_in_sql_agrees_with_the_rule(value: tuple[int, int], rows: list[tuple[int, int]]) -> None:
    """``ap`` widens the value by a clock-dependent slack; SQL and rule agree at the same clock reading."""
    search = DateValue(Prefix.AP, *value)
    cond, params = _date_condition(search)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE idx (n INTEGER, low INTEGER, high INTEGER)")
    db.executemany("INSERT INTO idx VALUES (?, ?, ?)", [(i, lo, hi) for i, (lo, hi) in enumerate(rows)])
    found = {n for (n,) in db.execute(f"SELECT n FROM idx WHERE {cond}", list(params))}  # noqa: S608 - test
    # the ranges are all within a day of the epoch, and the slack is at least a day: everything overlaps
    assert found == {i for i, (lo, hi) in enumerate(rows) if date_matches(search, lo, hi)}
