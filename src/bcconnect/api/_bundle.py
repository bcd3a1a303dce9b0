"""Bundles assembled from stored JSON bytes (no parse/serialise round trip of the resources)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache
from urllib.parse import urlencode

import orjson

from bcconnect.view import StoredResource


def resource_url(base_url: str, resource: StoredResource) -> str:
    """``[base]/Type/id``."""
    return f"{base_url}/{resource.resource_type}/{resource.id}"


@lru_cache(maxsize=4096)
def http_date(instant: str) -> str:
    """A FHIR instant as an HTTP date (Last-Modified); remembered, as the same versions are read again and again."""
    moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return format_datetime(moment, usegmt=True)


def link_url(base: str, path: str, params: Iterable[tuple[str, str]]) -> str:
    """An absolute URL below the FHIR base with encoded query parameters."""
    query = urlencode(list(params))
    return f"{base}/{path}" + (f"?{query}" if query else "")


def searchset(
    *,
    links: Sequence[tuple[str, str]],
    entries: Sequence[tuple[str, bytes, str]],
    total: int | None,
    outcome: bytes | None = None,
    meta: dict[str, object] | None = None,
) -> bytes:
    """A searchset Bundle; ``entries`` are (fullUrl, resource bytes, search mode)."""
    head: dict[str, object] = {"resourceType": "Bundle", "type": "searchset"}
    if meta:
        head["meta"] = meta
    if total is not None:
        head["total"] = total
    head["link"] = [{"relation": rel, "url": url} for rel, url in links]
    parts = [
        b'{"fullUrl":' + orjson.dumps(url) + b',"resource":' + body + b',"search":{"mode":"' + mode.encode() + b'"}}'
        for url, body, mode in entries
    ]
    if outcome is not None:
        parts.append(b'{"resource":' + outcome + b',"search":{"mode":"outcome"}}')
    return orjson.dumps(head)[:-1] + b',"entry":[' + b",".join(parts) + b"]}"


def history_bundle(*, base_url: str, links: Sequence[tuple[str, str]], versions: Sequence[StoredResource]) -> bytes:
    """A history Bundle: each version with its request/response; deletions have no resource."""
    head = {
        "resourceType": "Bundle",
        "type": "history",
        "link": [{"relation": rel, "url": url} for rel, url in links],
    }
    parts = []
    for v in versions:
        url = resource_url(base_url, v)
        request = {"method": "DELETE" if v.deleted else "PUT", "url": f"{v.resource_type}/{v.id}"}
        response = {
            "status": "204" if v.deleted else "200",
            "etag": f'W/"{v.version}"',
            "lastModified": v.last_updated,
        }
        entry = b'{"fullUrl":' + orjson.dumps(url)
        if v.body is not None:
            entry += b',"resource":' + v.body
        entry += b',"request":' + orjson.dumps(request) + b',"response":' + orjson.dumps(response) + b"}"
        parts.append(entry)
    return orjson.dumps(head)[:-1] + b',"entry":[' + b",".join(parts) + b"]}"
