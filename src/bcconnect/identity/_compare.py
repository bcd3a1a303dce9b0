"""Field comparisons: each field of a pair of records falls into one agreement level.

Level 0 is the strongest agreement, the last level is disagreement, and :data:`NULL` means the field is missing
on either side (it then carries no evidence, as in Fellegi–Sunter with missing values). A pair becomes a
comparison vector — one level per field — that the model scores and EM learns from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import jellyfish
from rapidfuzz.distance import OSA, JaroWinkler

from bcconnect.identity._normalise import (
    Demographics,
    postcode_district,
    postcode_sector,
    same_given_name,
)
from bcconnect.identity._phonetic import double_metaphone

#: the field is absent on one side or both
NULL: Final = -1
#: Jaro–Winkler similarity from which two names count as a typo of one another
CLOSE_NAME: Final = 0.88
#: a short form must keep at least this many letters of the full name to count as one (Jas, Jaswinder)
_SHORT_FORM: Final = 3
#: a shorter name than this one keystroke from another is as likely a different name (Ann/Anne, Jon/Joan)
_SLIP_MIN_LETTERS: Final = 4


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A compared field and the names of its agreement levels (strongest first, disagreement last)."""

    name: str
    levels: tuple[str, ...]


FIELDS: Final = (
    FieldSpec("nhs_number", ("exact", "different")),
    FieldSpec("given", ("exact", "alias", "phonetic", "close", "middle", "different")),
    FieldSpec("family", ("exact", "part", "phonetic", "close", "different")),
    FieldSpec("birth_date", ("exact", "day_month_swapped", "year_typo", "two_parts", "different")),
    FieldSpec("sex", ("exact", "different")),
    FieldSpec("postcode", ("exact", "sector", "district", "different")),
    FieldSpec("phone", ("exact", "different")),
)
FIELD_NAMES: Final = tuple(f.name for f in FIELDS)
#: levels (indices) used by the rules
GIVEN_PHONETIC: Final = 2
GIVEN_CLOSE: Final = 3
GIVEN_MIDDLE: Final = 4
GIVEN_DIFFERENT: Final = 5
FAMILY_DIFFERENT: Final = 4
FAMILY_PHONETIC: Final = 2
FAMILY_CLOSE: Final = 3
DOB_EXACT, DOB_SWAPPED, DOB_YEAR_TYPO, DOB_TWO_PARTS, DOB_DIFFERENT = range(5)
POSTCODE_DIFFERENT: Final = 3
SEX_DIFFERENT: Final = 1

Vector = tuple[int, ...]


def jaro_winkler(a: str, b: str) -> float:
    """Jaro–Winkler similarity of two strings (1.0 equal, 0.0 nothing in common), computed by rapidfuzz.

    >>> round(jaro_winkler("martha", "marhta"), 3), jaro_winkler("abc", "abc"), jaro_winkler("", "x")
    (0.961, 1.0, 0.0)
    """
    return float(JaroWinkler.similarity(a, b))


@lru_cache(maxsize=65_536)
def romanisation_key(name: str) -> str:
    """A key shared by romanisations of one name from another script (Mohammed/Muhammad, Siddiqui/Siddiqi).

    Metaphone (jellyfish) of the name after folding the alternations clerks use for one sound: aspirated
    consonants written with or without ``h`` (Dhillon/Dillon), ``q``/``k``, ``ph``/``f``, ``w``/``u`` and
    ``y``/``i`` after a vowel (Chowdhury/Choudhury, Zaynab/Zainab), and every vowel spelling (the Metaphone
    key keeps only an initial vowel).

    >>> romanisation_key("mohammed") == romanisation_key("muhammad")
    True
    >>> romanisation_key("siddiqui") == romanisation_key("siddiqi")
    True
    """
    folded = name.replace("ph", "f").replace("q", "k")
    for aspirate in ("dh", "th", "bh", "gh", "jh", "kh"):
        folded = folded.replace(aspirate, aspirate[0])
    out = []
    for i, ch in enumerate(folded):
        if ch in "wy" and i > 0 and folded[i - 1] in "aeiou":
            ch = "u" if ch == "w" else "i"
        out.append(ch)
    return str(jellyfish.metaphone("".join(out))) if out else ""


def keying_slip(a: str | None, b: str | None) -> bool:
    """Two names of four or more letters one keystroke apart: a letter dropped, doubled, wrong, or two
    neighbours transposed (optimal string alignment distance 1, rapidfuzz).

    Parents give twins different names, not one name and a misspelling of it, so a slip like this between two
    records of one birthday and household is a clerk's, not a second child (Jennnifer/Jennifer, Kirna/Kiran);
    names that merely sound alike (Hassan/Hussein) are not slips.

    >>> keying_slip("kirna", "kiran"), keying_slip("jennnifer", "jennifer"), keying_slip("hassan", "hussein")
    (True, True, False)
    >>> keying_slip("ann", "anne"), keying_slip("maria", "maria")
    (False, False)
    """
    if a is None or b is None or min(len(a), len(b)) < _SLIP_MIN_LETTERS:
        return False
    return bool(OSA.distance(a, b) == 1)


def _phonetic_equal(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return bool(a[0]) and (a[0] == b[0] or a[0] == b[1] or a[1] == b[0])


def _short_form(a: str, b: str) -> bool:
    """One name is the start of the other (Jas/Jaswinder, Sukh/Sukhdev), keeping 3+ letters.

    Only the start: a name's end is often a name of its own (Sana in Rukhsana), and twins are named so.
    """
    short, full = sorted((a, b), key=len)
    return len(short) >= _SHORT_FORM and full.startswith(short)


def given_level(a: str | None, b: str | None, a_other: str | None = None, b_other: str | None = None) -> int:
    """Level of two given names: exact, alias (a known short form), phonetic, close (a typo, or the start of
    the other name), middle (one's middle name), different."""
    if a is None or b is None:
        return NULL
    if a == b:
        return 0
    if same_given_name(a, b):
        return 1
    if _phonetic_equal(double_metaphone(a), double_metaphone(b)) or romanisation_key(a) == romanisation_key(b):
        return 2
    if _short_form(a, b) or jaro_winkler(a, b) >= CLOSE_NAME:
        return 3
    if (b_other and a in b_other.split()) or (a_other and b in a_other.split()):
        return 4
    return GIVEN_DIFFERENT


def family_level(a: str | None, b: str | None) -> int:
    """Level of two family names: exact, part (of a double surname), phonetic, close (a typo), different."""
    if a is None or b is None:
        return NULL
    if a == b:
        return 0
    parts_a, parts_b = set(a.split("-")), set(b.split("-"))
    if parts_a <= parts_b or parts_b <= parts_a or a.replace("-", "") == b.replace("-", ""):
        return 1
    if _phonetic_equal(double_metaphone(a), double_metaphone(b)) or romanisation_key(
        a.replace("-", "")
    ) == romanisation_key(b.replace("-", "")):
        return FAMILY_PHONETIC
    return 3 if jaro_winkler(a, b) >= CLOSE_NAME else FAMILY_DIFFERENT


def compare_given(a: Demographics, b: Demographics) -> int:
    """Level of the given names of two records (see :func:`given_level`)."""
    return given_level(a.given, b.given, a.given_other, b.given_other)


def compare_family(a: Demographics, b: Demographics) -> int:
    """Level of the family names of two records (see :func:`family_level`)."""
    return family_level(a.family, b.family)


def name_levels(a: Demographics, b: Demographics) -> tuple[int, int, bool]:
    """Given and family levels, reading ``b``'s names the other way round when they agree only that way.

    Returns ``(given level, family level, swapped)``. Names entered the wrong way round are a known keying
    error; a swap is taken only when both names then agree at least phonetically.
    """
    given, family = compare_given(a, b), compare_family(a, b)
    if (
        given in (GIVEN_DIFFERENT, NULL)
        and family in (FAMILY_DIFFERENT, NULL)
        and a.given
        and b.given
        and a.given[0] == (b.family or " ")[0]  # a swap keeps initials crossed: most pairs stop here
        and (a.family or " ")[0] == b.given[0]
    ):
        b_first_family = (b.family or "").split("-")[0] or None
        crossed_given = given_level(a.given, b_first_family)
        crossed_family = family_level(a.family, b.given)
        if 0 <= crossed_given <= 2 and 0 <= crossed_family <= FAMILY_PHONETIC:
            return crossed_given, crossed_family, True
    return given, family, False


def _year_typo(x: int, y: int) -> bool:
    """Years one apart, or differing in one digit, or by two neighbouring digits transposed (1985/1958)."""
    if abs(x - y) == 1:
        return True
    sx, sy = f"{x:04d}", f"{y:04d}"
    diffs = [i for i in range(4) if sx[i] != sy[i]]
    if len(diffs) == 1:
        return True
    return (
        len(diffs) == 2 and diffs[1] == diffs[0] + 1 and sx[diffs[0]] == sy[diffs[1]] and sx[diffs[1]] == sy[diffs[0]]
    )


def compare_birth_date(a: Demographics, b: Demographics) -> int:
    """Level of the dates of birth: exact, day/month swapped, one year digit wrong, two parts equal, different."""
    x, y = a.birth_date, b.birth_date
    if x is None or y is None:
        return NULL
    if x == y:
        return DOB_EXACT
    if x.year == y.year and x.day == y.month and x.month == y.day:
        return DOB_SWAPPED
    if x.month == y.month and x.day == y.day and _year_typo(x.year, y.year):
        return DOB_YEAR_TYPO
    same = (x.year == y.year) + (x.month == y.month) + (x.day == y.day)
    return DOB_TWO_PARTS if same == 2 else DOB_DIFFERENT


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
    given, family, _swapped = name_levels(a, b)
    return (
        _exact(a.nhs_number, b.nhs_number),
        given,
        family,
        compare_birth_date(a, b),
        _exact(a.sex, b.sex),
        compare_postcode(a, b),
        _exact(a.phone, b.phone),
    )
