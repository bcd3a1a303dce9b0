"""Blocking: the keys under which a record is filed so that candidates are found without comparing all pairs.

A true pair must share at least one key to be compared at all, so the keys are chosen so that the noise seen
in practice (a missing NHS number, a typo in a name, a swapped day and month, a house move) leaves at least one
of them intact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from bcconnect.identity._normalise import Demographics


def _nhs(d: Demographics) -> str | None:
    return f"n:{d.nhs_number}" if d.nhs_number else None


def _birth_date_any_order(d: Demographics) -> str | None:
    # day and month sorted: a record with them swapped files under the same key
    if d.birth_date is None:
        return None
    low, high = sorted((d.birth_date.day, d.birth_date.month))
    return f"d:{d.birth_date.year}:{low}:{high}"


def _names_phonetic_birth_year(d: Demographics) -> str | None:
    # both names: a family name and a year alone make blocks that grow with the population (Smith, 1960)
    given, family = d.given_keys[0], d.family_keys[0]
    return f"f:{family}:{given}:{d.birth_date.year}" if given and family and d.birth_date else None


def _family_phonetic_birthday(d: Demographics) -> str | None:
    # the family name and the day and month of birth (either order): a mistyped year of birth, with a
    # nickname or a move, still meets its pair (a block holds ~1/365 of a family name's bearers)
    family = d.family_keys[0]
    if not (family and d.birth_date):
        return None
    low, high = sorted((d.birth_date.day, d.birth_date.month))
    return f"b:{family}:{low}:{high}"


def _postcode_given_phonetic(d: Demographics) -> str | None:
    key = d.given_keys[0]
    return f"p:{d.postcode}:{key}" if key and d.postcode else None


def _phone(d: Demographics) -> str | None:
    return f"t:{d.phone}" if d.phone else None


BLOCKING_KEYS: Final[dict[str, Callable[[Demographics], str | None]]] = {
    "nhs_number": _nhs,
    "birth_date_any_order": _birth_date_any_order,
    "names_phonetic_birth_year": _names_phonetic_birth_year,
    "family_phonetic_birthday": _family_phonetic_birthday,
    "postcode_given_phonetic": _postcode_given_phonetic,
    "phone": _phone,
}


def block_keys(record: Demographics, names: Sequence[str]) -> list[str]:
    """The blocking keys of a record under the named blocking rules (missing fields give no key)."""
    keys = (BLOCKING_KEYS[name](record) for name in names)
    return [k for k in keys if k is not None]


def _names(d: Demographics) -> str | None:
    given, family = d.given_keys[0], d.family_keys[0]
    return f"g:{family}:{given}" if given and family else None


#: EM passes (name, key, fields whose m is learnt there, fields blocked on): none learns where it is blocked
EM_PASSES: Final = (
    (
        "birth_date_any_order",
        _birth_date_any_order,
        frozenset({"nhs_number", "given", "family", "sex", "postcode", "phone"}),
        frozenset({"birth_date"}),
    ),
    ("names_phonetic", _names, frozenset({"birth_date"}), frozenset({"given", "family"})),
)
