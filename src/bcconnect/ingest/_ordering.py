"""Out-of-order deliveries: a resource is never overwritten by content from an older source record.

FHIR ``versionId`` and feed sequence numbers already let ingest drop a stale *record*. HL7 v2 has no version:
several messages (A01, A08, A03 …) write the same resources, and a feed may deliver them out of order. So the
guard works per *resource*: the source order of the record each resource was last written from is kept, and
an older record does not overwrite it. The order is the source timestamp (MSH-7, ``meta.lastUpdated``, the
feed's ``modified``) at its full precision (HL7 allows 1/10 000 s), then the sender's own sequence (MSH-13,
``versionId``, the feed's sequence number) where there is one, else the message control id compared as the
sender counts (``MSG10`` after ``MSG9``) — so an A02 and an A03 sent in the same second apply in send order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from bcconnect.store import Tx, upsert_rows

_HL7_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$")
_UK_DATETIME = re.compile(r"^(\d{2})/(\d{2})/(\d{4})(?: (\d{2}):(\d{2})(?::(\d{2}))?)?$")
_CHUNK = 400
_DIGITS = re.compile(r"\d+")
#: width numbers are padded to so that text comparison orders them as numbers
_WIDTH = 20


def normalise_source_time(value: str | None) -> str | None:
    """A source timestamp as a comparable UTC ISO instant (zone-less values are read as UTC), or None.

    >>> normalise_source_time("20261101093000")
    '2026-11-01T09:30:00.000000Z'
    >>> normalise_source_time("20261101093000.1234+0100")
    '2026-11-01T08:30:00.123400Z'
    >>> normalise_source_time("01/11/2026 09:30:00")
    '2026-11-01T09:30:00.000000Z'
    >>> normalise_source_time("2026-11-01T09:30:00.123Z")
    '2026-11-01T09:30:00.123000Z'
    >>> normalise_source_time("soon") is None
    True
    """
    if not value:
        return None
    text = value.strip()
    parsed: datetime | None = None
    if match := _HL7_TS.match(text):
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        try:
            parsed = datetime(
                int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0),
                int((fraction or "0").ljust(6, "0")[:6]), tzinfo=UTC,
            )  # fmt: skip
        except ValueError:
            return None
        if zone:
            sign = 1 if zone[0] == "+" else -1
            offset = sign * (int(zone[1:3]) * 60 + int(zone[3:5]))
            parsed -= timedelta(minutes=offset)
    elif match := _UK_DATETIME.match(text):
        day, month, year, hour, minute, second = match.groups()
        try:
            parsed = datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), tzinfo=UTC
            )
        except ValueError:
            return None
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _numeric(text: str) -> str:
    """``text`` with every run of digits zero-padded, so text order is the sender's counting order.

    >>> _numeric("RBK|MSG10") > _numeric("RBK|MSG9")
    True
    """
    return _DIGITS.sub(lambda m: m.group(0).zfill(_WIDTH), text)


def source_order(timestamp: str | None, source_key: str, sequence: str | None = None) -> str | None:
    """The value records are ordered by (text order): the normalised timestamp, then the sender's sequence
    number when it is an integer, else the source key with numbers compared as numbers.

    >>> a02 = source_order("20261101093000", "RBK|MSG9")
    >>> a03 = source_order("20261101093000", "RBK|MSG10")
    >>> a03 > a02
    True
    >>> source_order("20261101093000", "RBK|B", "10") > source_order("20261101093000", "RBK|A", "9")
    True
    >>> source_order("20261101093000.0001", "RBK|1") > source_order("20261101093000", "RBK|2")
    True
    >>> source_order(None, "RBK|0001") is None
    True
    """
    normalised = normalise_source_time(timestamp)
    if not normalised:
        return None
    if sequence is not None and sequence.strip().isdigit():
        return f"{normalised}|S{sequence.strip().zfill(_WIDTH)}"
    return f"{normalised}|K{_numeric(source_key)}"


def stored_source_times(tx: Tx, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The source time each of these resources was last written from (absent: never guarded)."""
    found: dict[tuple[str, str], str] = {}
    unique = sorted(set(keys))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        condition = " OR ".join("(res_type = ? AND res_id = ?)" for _ in chunk)
        params = [part for key in chunk for part in key]
        rows = tx.query(f"SELECT res_type, res_id, source_time FROM source_times WHERE {condition}", params)  # noqa: S608
        found.update({(r[0], r[1]): r[2] for r in rows})
    return found


def record_source_times(tx: Tx, rows: Iterable[tuple[str, str, str]]) -> None:
    """Remember the source time each resource was written from (the newest wins)."""
    newest: dict[tuple[str, str], str] = {}
    for res_type, res_id, when in rows:
        key = (res_type, res_id)
        if when > newest.get(key, ""):
            newest[key] = when
    upsert_rows(
        tx,
        "source_times",
        ("res_type", "res_id", "source_time"),
        [(*key, when) for key, when in newest.items()],
        key=("res_type", "res_id"),
        update=("source_time",),
        where="excluded.source_time > source_times.source_time",
    )
