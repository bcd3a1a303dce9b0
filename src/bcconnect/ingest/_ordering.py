"""Out-of-order deliveries: a resource is never overwritten by content from an older source record.

FHIR ``versionId`` and feed sequence numbers already let ingest drop a stale *record*. HL7 v2 has no version:
several messages (A01, A08, A03 …) write the same resources, and a feed may deliver them out of order. So the
guard works per *resource*: the source timestamp (MSH-7, ``meta.lastUpdated``, the feed's ``modified``) of the
record each resource was last written from is kept, and an older record does not overwrite it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from bcconnect.store import Tx

_HL7_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$")
_UK_DATETIME = re.compile(r"^(\d{2})/(\d{2})/(\d{4})(?: (\d{2}):(\d{2})(?::(\d{2}))?)?$")
_CHUNK = 400


def normalise_source_time(value: str | None) -> str | None:
    """A source timestamp as a comparable UTC ISO instant (zone-less values are read as UTC), or None.

    >>> normalise_source_time("20261101093000")
    '2026-11-01T09:30:00.000Z'
    >>> normalise_source_time("20261101093000+0100")
    '2026-11-01T08:30:00.000Z'
    >>> normalise_source_time("01/11/2026 09:30:00")
    '2026-11-01T09:30:00.000Z'
    >>> normalise_source_time("2026-11-01T09:30:00.123Z")
    '2026-11-01T09:30:00.123Z'
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
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def source_order(timestamp: str | None, source_key: str) -> str | None:
    """The value records are ordered by: the normalised timestamp, then the source key to break ties (two
    messages in the same second: the later control id wins, whatever order they arrive in).

    >>> source_order("20261101093000", "RBK|0002") > source_order("20261101093000", "RBK|0001")
    True
    >>> source_order(None, "RBK|0001") is None
    True
    """
    normalised = normalise_source_time(timestamp)
    return f"{normalised}|{source_key}" if normalised else None


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
    tx.executemany(
        "INSERT INTO source_times (res_type, res_id, source_time) VALUES (?, ?, ?)"
        " ON CONFLICT (res_type, res_id) DO UPDATE SET source_time = excluded.source_time"
        " WHERE excluded.source_time > source_times.source_time",
        list(rows),
    )
