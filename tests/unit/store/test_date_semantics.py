"""Date prefixes compiled to SQL agree with the R4 §3.1.1.4.4 definitions on ranges, for any ranges."""

from __future__ import annotations

import sqlite3

from hypothesis import given
from hypothesis import strategies as st

from bcconnect.search import DateValue, Prefix
from bcconnect.store._search_sql import _date_condition

RANGES = st.tuples(st.integers(0, 40), st.integers(1, 12)).map(lambda t: (t[0], t[0] + t[1]))


def expected(prefix: Prefix, pl: int, ph: int, rl: int, rh: int) -> bool:
    eq = pl <= rl and rh <= ph
    return {
        Prefix.EQ: eq,
        Prefix.NE: not eq,
        Prefix.GT: rh > ph,
        Prefix.LT: rl < pl,
        Prefix.GE: rh > ph or eq,
        Prefix.LE: rl < pl or eq,
        Prefix.SA: rl >= ph,
        Prefix.EB: rh <= pl,
    }[prefix]


@given(
    prefix=st.sampled_from([p for p in Prefix if p is not Prefix.AP]),
    value=RANGES,
    rows=st.lists(RANGES, min_size=1, max_size=12),
)
def test_prefixes_match_the_specification(prefix: Prefix, value: tuple[int, int], rows: list[tuple[int, int]]) -> None:
    """For every stored range, the SQL condition holds exactly when the spec says it matches."""
    cond, params = _date_condition(DateValue(prefix, *value))
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE idx (n INTEGER, low INTEGER, high INTEGER)")
    db.executemany("INSERT INTO idx VALUES (?, ?, ?)", [(i, lo, hi) for i, (lo, hi) in enumerate(rows)])
    found = {n for (n,) in db.execute(f"SELECT n FROM idx WHERE {cond}", list(params))}  # noqa: S608 - test
    assert found == {i for i, (lo, hi) in enumerate(rows) if expected(prefix, *value, lo, hi)}
