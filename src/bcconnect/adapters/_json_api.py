"""The ``json_api`` source: a vendor change feed (``GET /api/v2/changes?cursor=&limit=``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
import structlog

from bcconnect.adapters._http import FetchStats, SourceHttp
from bcconnect.adapters._types import Page, RawRecord, RawReject
from bcconnect.config import AdapterConfig
from bcconnect.errors import SourceProtocolError

log = structlog.get_logger()

# a guard against a feed that always says ``has_more``
_MAX_PAGES = 100_000


def read_change(change: object) -> RawRecord | RawReject:
    """One feed entry as a record (upserts carry ``data``; deletes carry the change itself).

    >>> record = read_change({"seq": 7, "entity": "patient", "id": "P1", "op": "delete"})
    >>> record.source_key, record.version, record.deleted
    ('patient/P1', '7', True)
    """
    raw = orjson.dumps(change)
    if not isinstance(change, dict):
        return RawReject(raw, "unknown", "a change is not a JSON object")
    entity, key, seq, op = change.get("entity"), change.get("id"), change.get("seq"), change.get("op")
    record_type = entity if isinstance(entity, str) and entity else "unknown"
    if record_type == "unknown":
        return RawReject(raw, record_type, "change without entity")
    if not isinstance(key, str | int) or isinstance(key, bool) or key == "":
        return RawReject(raw, record_type, "change without id")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return RawReject(raw, record_type, "change without an integer seq")
    modified = change.get("modified")
    last_updated = modified if isinstance(modified, str) else None
    if op == "delete":
        return RawRecord(record_type, f"{record_type}/{key}", raw, str(seq), last_updated, deleted=True)
    if op != "upsert":
        return RawReject(raw, record_type, f"unknown op {op!r}")
    data = change.get("data")
    if not isinstance(data, dict):
        return RawReject(raw, record_type, "upsert without a data object")
    return RawRecord(record_type, f"{record_type}/{key}", orjson.dumps(data), str(seq), last_updated)


class JsonApiSource:
    """Follows the change feed from the cursor until ``has_more`` is false; the feed's cursor is ours."""

    def __init__(self, config: AdapterConfig, http: SourceHttp) -> None:
        self.name = config.name
        self._url = f"{(config.base_url or '').rstrip('/')}/api/v2/changes"
        self._limit = config.fetch.page_size
        self._http = http

    @property
    def stats(self) -> FetchStats:
        """Request, retry and fault counters."""
        return self._http.stats

    async def pages(self, cursor: str | None) -> AsyncGenerator[Page, None]:
        """One page per feed response; its cursor is the feed's ``next_cursor``."""
        current = cursor
        for number in range(_MAX_PAGES):
            params = {"limit": str(self._limit)}
            if current is not None:
                params["cursor"] = current
            body, _ = await self._http.get_json(self._url, params=params)
            changes, next_cursor, has_more = self._read(body, number + 1)
            records: list[RawRecord] = []
            rejects: list[RawReject] = []
            for change in changes:
                item = read_change(change)
                if isinstance(item, RawRecord):
                    records.append(item)
                else:
                    rejects.append(item)
            if records or rejects or next_cursor != current:
                yield Page(tuple(records), tuple(rejects), next_cursor)
            if not has_more:
                return
            if next_cursor == current and not changes:
                raise SourceProtocolError("the change feed says has_more but does not move on", source=self.name)
            current = next_cursor
        log.warning("source_page_limit", source=self.name, pages=_MAX_PAGES)

    async def acknowledge(self, cursor: str) -> None:
        """Nothing to do: the feed is read-only and the cursor records progress."""

    def _read(self, body: object, number: int) -> tuple[list[Any], str, bool]:
        if not isinstance(body, dict):
            raise SourceProtocolError(f"change feed page {number}: not a JSON object", source=self.name)
        changes, next_cursor = body.get("changes"), body.get("next_cursor")
        if not isinstance(changes, list):
            raise SourceProtocolError(f"change feed page {number}: 'changes' is not a list", source=self.name)
        if not isinstance(next_cursor, str | int) or isinstance(next_cursor, bool):
            raise SourceProtocolError(f"change feed page {number}: no 'next_cursor'", source=self.name)
        return changes, str(next_cursor), body.get("has_more") is True
