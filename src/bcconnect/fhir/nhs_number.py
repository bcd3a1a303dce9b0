"""NHS number validation (Modulus 11, NHS Data Dictionary)."""

from __future__ import annotations

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit for nine digits, or None when no valid number has them.

    >>> check_digit("999000001")
    8
    >>> check_digit("123456789") is None  # weighted sum 210: remainder 1, check 10, never issued
    True
    """
    if len(first_nine) != 9 or not first_nine.isdigit():
        raise ValueError(f"expected nine digits, got {len(first_nine)} characters")
    total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def normalise(value: str) -> str:
    """Strip the spaces and dashes people write NHS numbers with (``999 000 0018``)."""
    return "".join(ch for ch in value if ch not in " -")


def is_valid(value: str) -> bool:
    """True when ``value`` is ten digits whose last is the Modulus 11 check digit.

    >>> [is_valid(n) for n in ("9000000009", "9912003888", "9434765919", "9876544321", "999 000 0018")]
    [True, True, True, False, True]
    """
    digits = normalise(value)
    if len(digits) != 10 or not digits.isdigit():
        return False
    return check_digit(digits[:9]) == int(digits[9])
