"""Value normalisation shared by index extraction and query parsing (so both sides agree byte for byte).

Dates become half-open ``[low, high)`` ranges in epoch milliseconds (a partial date covers its whole
precision: ``2020`` is all of 2020); strings are compared case- and accent-insensitively; token rows are found
by 64-bit hashes of (resource type, parameter, system, code), after HAPI FHIR.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

#: open ends of a date range (a Period without start or end); fit a signed 64-bit column
MIN_TIME = -(2**62)
MAX_TIME = 2**62

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ingest normalises the same display texts and names again and again: a bounded memo saves most of the work
@functools.lru_cache(maxsize=1 << 16)
def normalize_string(text: str) -> str:
    """Fold case and strip accents, so ``name=zoe`` finds ``Zoë``.

    >>> normalize_string("Zoë O'Brien")
    "zoe o'brien"
    """
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def token_hash(resource_type: str, param: str, system: str | None, code: str | None) -> int:
    """A signed 64-bit hash of one token; ``None`` means "any" (distinct from the empty system "").

    >>> token_hash("Patient", "gender", None, "male") == token_hash("Patient", "gender", None, "male")
    True
    >>> token_hash("Patient", "gender", "", "male") == token_hash("Patient", "gender", None, "male")
    False
    """
    parts = (resource_type, param, "\x00" if system is None else system, "\x00" if code is None else code)
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _millis(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


# ingest indexes the same dates again and again (placeholder instants, birth dates, a day's timestamps)
@functools.lru_cache(maxsize=1 << 16)
def date_range(text: str) -> tuple[int, int] | None:
    """The ``[low, high)`` epoch-millisecond range a FHIR date, dateTime or instant covers (None: invalid).

    A dateTime without a zone is read as UTC (FHIR requires a zone whenever a time is given).

    >>> low, high = date_range("2020-02")
    >>> (high - low) // 86_400_000
    29
    """
    match = _DATE.match(text.strip())
    if not match:
        return None
    g = match.groupdict()
    try:
        year = int(g["y"])
        if g["m"] is None:
            start = datetime(year, 1, 1, tzinfo=UTC)
            return _millis(start), _millis(datetime(year + 1, 1, 1, tzinfo=UTC))
        month = int(g["m"])
        if g["d"] is None:
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return _millis(start), _millis(end)
        day = datetime(year, month, int(g["d"]), tzinfo=UTC)
        if g["H"] is None:
            return _millis(day), _millis(day + timedelta(days=1))
        zone = g["tz"] or "Z"
        offset = timedelta(0)
        if zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        moment = day + timedelta(hours=int(g["H"]), minutes=int(g["M"])) - offset
        if g["S"] is None:
            return _millis(moment), _millis(moment + timedelta(minutes=1))
        moment += timedelta(seconds=int(g["S"]))
        if g["f"] is None:
            return _millis(moment), _millis(moment + timedelta(seconds=1))
        fraction = g["f"][1:]
        millis = int(fraction[:3].ljust(3, "0"))
        low = _millis(moment) + millis
        return low, low + (1 if len(fraction) >= 3 else 10 ** (3 - len(fraction)))
    except ValueError:  # 2020-02-30 and friends
        return None


def number_range(text: str) -> tuple[Decimal, Decimal, Decimal] | None:
    """The value and the ``[low, high)`` range its stated precision implies (``5.4`` is ``[5.35, 5.45)``).

    >>> number_range("5.4")
    (Decimal('5.4'), Decimal('5.35'), Decimal('5.45'))
    """
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5).scaleb(exponent - 1)
    return value, value - half, value + half
