"""The ``fhir_api`` cursor: per resource type, the newest server timestamp seen and what sat exactly on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from bcconnect.errors import ConfigError


def parse_instant(value: object) -> datetime | None:
    """A FHIR ``instant`` as an aware UTC datetime, or ``None`` when absent or unreadable.

    >>> parse_instant("2026-11-22T10:00:00.123Z").isoformat()
    '2026-11-22T10:00:00.123000+00:00'
    >>> parse_instant("yesterday") is None
    True
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # an instant must carry a zone; guessing one could skip records
    return parsed.astimezone(UTC)


def format_instant(value: datetime) -> str:
    """An instant as FHIR writes it, UTC with milliseconds.

    >>> format_instant(datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    '2026-11-22T10:00:00.000Z'
    """
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_date_instant(value: str | None) -> str | None:
    """The server's ``Date`` header as a FHIR instant (a server-side clock reading), or ``None``."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return format_instant(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def minus(instant: str, seconds: float) -> str:
    """``instant`` moved back by the overlap window."""
    parsed = parse_instant(instant)
    assert parsed is not None  # only instants we parsed ourselves reach here
    return format_instant(parsed - timedelta(seconds=seconds))


@dataclass
class TypeState:
    """Where one resource type stands."""

    #: the newest ``meta.lastUpdated`` seen (server time), as the server wrote it
    watermark: str | None = None
    #: ``id/versionId`` of the versions whose ``lastUpdated`` equals the watermark
    boundary: set[str] = field(default_factory=set)
    #: where the next ``_history`` read for deletes starts (server time)
    deletes_since: str | None = None

    def observe(self, key: str, last_updated: str | None) -> None:
        """Move the watermark forward for a version just read; keep the versions on the boundary."""
        seen = parse_instant(last_updated)
        if seen is None or last_updated is None:
            return
        current = parse_instant(self.watermark)
        if current is None or seen > current:
            self.watermark = format_instant(seen)
            self.boundary = {key}
        elif seen == current:
            self.boundary.add(key)


@dataclass
class FhirCursor:
    """All resource types' state; serialised as small, deterministic JSON text."""

    types: dict[str, TypeState] = field(default_factory=dict)

    def state(self, resource_type: str) -> TypeState:
        """The state of one type (created empty on first use)."""
        return self.types.setdefault(resource_type, TypeState())

    def dumps(self) -> str:
        """JSON with sorted keys and sorted boundary lists: the same state always gives the same text."""
        data: dict[str, Any] = {}
        for name, state in self.types.items():
            entry: dict[str, Any] = {}
            if state.watermark is not None:
                entry["watermark"] = state.watermark
            if state.boundary:
                entry["boundary"] = sorted(state.boundary)
            if state.deletes_since is not None:
                entry["deletes_since"] = state.deletes_since
            data[name] = entry
        return orjson.dumps({"v": 1, "types": data}, option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def loads(cls, text: str | None, *, source: str) -> FhirCursor:
        """Read a cursor written by :meth:`dumps`; ``None`` is the beginning."""
        if text is None:
            return cls()
        try:
            data = orjson.loads(text)
            types = data["types"]
            cursor = cls()
            for name, entry in types.items():
                for key in ("watermark", "deletes_since"):
                    if key in entry and parse_instant(entry[key]) is None:
                        raise TypeError(f"{name}.{key} is not an instant")
                cursor.types[str(name)] = TypeState(
                    watermark=entry.get("watermark"),
                    boundary=set(entry.get("boundary", [])),
                    deletes_since=entry.get("deletes_since"),
                )
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"the stored cursor of source {source!r} is not a fhir_api cursor") from exc
        return cursor


def merge_cursor_types(stored: str | None, page: str, types: frozenset[str], *, source: str) -> str:
    """``stored`` with the entries of ``types`` taken from ``page``: how a worker that reads only some of a
    source's resource types commits its progress without moving (or undoing) the other workers' types.

    >>> a = FhirCursor({"Patient": TypeState("2026-01-01T00:00:00Z")}).dumps()
    >>> b = FhirCursor({"Patient": TypeState("2025-01-01T00:00:00Z"), "Encounter": TypeState("2026-02-01T00:00:00Z")})
    >>> merged = FhirCursor.loads(merge_cursor_types(a, b.dumps(), frozenset({"Encounter"}), source="x"), source="x")
    >>> merged.types["Patient"].watermark, merged.types["Encounter"].watermark
    ('2026-01-01T00:00:00Z', '2026-02-01T00:00:00Z')
    """
    base = FhirCursor.loads(stored, source=source)
    update = FhirCursor.loads(page, source=source)
    for name in types:
        if name in update.types:
            base.types[name] = update.types[name]
    return base.dumps()
