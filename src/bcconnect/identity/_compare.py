"""Field comparisons: each field of a pair of records falls into one agreement level.

Level 0 is the strongest agreement, the last level is disagreement, and :data:`NULL` means the field is missing
on either side (it then carries no evidence, as in Fellegi–Sunter with missing values). A pair becomes a
comparison vector — one level per field — that the model scores and EM learns from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bcconnect.identity._normalise import (
    Demographics,
    postcode_district,
    postcode_sector,
    same_given_name,
)

#: the field is absent on one side or both
NULL: Final = -1
#: Jaro–Winkler similarity from which two names count as a typo of one another
CLOSE_NAME: Final = 0.88


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A compared field and the names of its agreement levels (strongest first, disagreement last)."""

    name: str
    levels: tuple[str, ...]


FIELDS: Final = (
    FieldSpec("nhs_number", ("exact", "different")),
    FieldSpec("given", ("exact", "alias", "phonetic", "close", "different")),
    FieldSpec("family", ("exact", "phonetic", "close", "different")),
    FieldSpec("birth_date", ("exact", "day_month_swapped", "two_parts", "different")),
    FieldSpec("sex", ("exact", "different")),
    FieldSpec("postcode", ("exact", "sector", "district", "different")),
    FieldSpec("phone", ("exact", "different")),
)
FIELD_NAMES: Final = tuple(f.name for f in FIELDS)

Vector = tuple[int, ...]


def jaro_winkler(a: str, b: str) -> float:
    """Jaro–Winkler similarity of two strings (1.0 equal, 0.0 nothing in common).

    >>> round(jaro_winkler("martha", "marhta"), 3), jaro_winkler("abc", "abc"), jaro_winkler("", "x")
    (0.961, 1.0, 0.0)
    """
    if a == b:
        return 1.0
    la, lb = len(a), len(b)
    if not la or not lb:
        return 0.0
    window = max(max(la, lb) // 2 - 1, 0)
    matched_b = [False] * lb
    matches_a: list[str] = []
    for i, ch in enumerate(a):
        for j in range(max(0, i - window), min(lb, i + window + 1)):
            if not matched_b[j] and b[j] == ch:
                matched_b[j] = True
                matches_a.append(ch)
                break
    m = len(matches_a)
    if not m:
        return 0.0
    matches_b = [b[j] for j in range(lb) if matched_b[j]]
    transpositions = sum(x != y for x, y in zip(matches_a, matches_b, strict=True)) / 2
    jaro = (m / la + m / lb + (m - transpositions) / m) / 3
    prefix = 0
    for x, y in zip(a[:4], b[:4], strict=False):
        if x != y:
            break
        prefix += 1
    return jaro + prefix * 0.1 * (1 - jaro)


def _phonetic_equal(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return bool(a[0]) and (a[0] == b[0] or a[0] == b[1] or a[1] == b[0])


def compare_given(a: Demographics, b: Demographics) -> int:
    """Level of the given names: exact, alias (a usual short form), phonetic, close (a typo), different."""
    if a.given is None or b.given is None:
        return NULL
    if a.given == b.given:
        return 0
    if same_given_name(a.given, b.given):
        return 1
    if _phonetic_equal(a.given_keys, b.given_keys):
        return 2
    return 3 if jaro_winkler(a.given, b.given) >= CLOSE_NAME else 4


def compare_family(a: Demographics, b: Demographics) -> int:
    """Level of the family names: exact, phonetic, close (a typo), different."""
    if a.family is None or b.family is None:
        return NULL
    if a.family == b.family:
        return 0
    if _phonetic_equal(a.family_keys, b.family_keys):
        return 1
    return 2 if jaro_winkler(a.family, b.family) >= CLOSE_NAME else 3


def compare_birth_date(a: Demographics, b: Demographics) -> int:
    """Level of the dates of birth: exact, day and month swapped, two of three parts equal, different."""
    x, y = a.birth_date, b.birth_date
    if x is None or y is None:
        return NULL
    if x == y:
        return 0
    if x.year == y.year and x.day == y.month and x.month == y.day:
        return 1
    same = (x.year == y.year) + (x.month == y.month) + (x.day == y.day)
    return 2 if same == 2 else 3


def compare_postcode(a: Demographics, b: Demographics) -> int:
    """Level of the postcodes: exact, same sector, same district, different."""
    x, y = a.postcode, b.postcode
    if x is None or y is None:
        return NULL
    if x == y:
        return 0
    if postcode_sector(x) == postcode_sector(y):
        return 1
    return 2 if postcode_district(x) == postcode_district(y) else 3


def _exact(x: object, y: object) -> int:
    if x is None or y is None:
        return NULL
    return 0 if x == y else 1


def compare(a: Demographics, b: Demographics) -> Vector:
    """The comparison vector of a pair, one level per field of :data:`FIELDS` (in that order)."""
    return (
        _exact(a.nhs_number, b.nhs_number),
        compare_given(a, b),
        compare_family(a, b),
        compare_birth_date(a, b),
        _exact(a.sex, b.sex),
        compare_postcode(a, b),
        _exact(a.phone, b.phone),
    )
