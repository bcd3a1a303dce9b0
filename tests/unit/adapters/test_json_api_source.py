"""The json_api source: the RNA change feed, its cursor, upserts, deletes and rejects."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import orjson
import pytest

from bcconnect.adapters import Page, open_source
from bcconnect.config import SourceAuthSettings, SourceAuthType, SourceKind
from bcconnect.errors import SourceAuthError, SourceProtocolError

API_KEY = SourceAuthSettings(type=SourceAuthType.API_KEY, api_key_env="RNA_KEY")


def change(seq: int, op: str = "upsert", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"seq": seq, "entity": "patient", "id": f"P{seq:06d}", "op": op}
    body["modified"] = "22/11/2026 10:00:00"
    if op == "upsert":
        body["data"] = {"patient_id": f"P{seq:06d}", "surname": "Test"}
    body.update(extra)
    return body


class FakeFeed:
    """A change feed: pages keyed by the cursor asked for."""

    def __init__(self, pages: dict[str | None, dict[str, Any]]) -> None:
        self.pages = pages
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("X-API-Key") != "key-1":
            return httpx.Response(401, json={"error": "unauthorised"})
        return httpx.Response(200, json=self.pages[request.url.params.get("cursor")])


async def collect(source: Any, cursor: str | None) -> list[Page]:
    async with contextlib.aclosing(source.pages(cursor)) as pages:
        return [page async for page in pages]


@pytest.mark.anyio
async def test_follows_the_feed_until_has_more_is_false(make_config: Any, environ: Any) -> None:
    """Each response is a page whose cursor is next_cursor; the next request sends it back."""
    feed = FakeFeed(
        {
            None: {"changes": [change(1), change(2)], "next_cursor": "c2", "has_more": True},
            "c2": {"changes": [change(3, "delete")], "next_cursor": "c3", "has_more": False},
        }
    )
    config = make_config(kind=SourceKind.JSON_API, auth=API_KEY, page_size=2)
    async with open_source(config, environ=environ, transport=httpx.MockTransport(feed)) as source:
        pages = await collect(source, None)
    assert [p.cursor for p in pages] == ["c2", "c3"]
    assert [r.url.params.get("cursor") for r in feed.requests] == [None, "c2"]
    assert feed.requests[0].url.params["limit"] == "2"
    assert feed.requests[0].url.path == "/api/v2/changes"
    first = pages[0].records[0]
    assert (first.record_type, first.source_key, first.version) == ("patient", "patient/P000001", "1")
    assert first.last_updated == "22/11/2026 10:00:00"
    assert orjson.loads(first.payload) == {"patient_id": "P000001", "surname": "Test"}
    deleted = pages[1].records[0]
    assert deleted.deleted
    assert orjson.loads(deleted.payload)["op"] == "delete"


@pytest.mark.anyio
async def test_resumes_from_cursor_and_rejects_broken_changes(make_config: Any, environ: Any) -> None:
    """A stored cursor is passed on; a change without id, seq or data is a reject, not a lost record."""
    feed = FakeFeed(
        {
            "c9": {
                "changes": [
                    change(10, id=""),
                    {**change(11), "seq": "x"},
                    {"seq": 12, "entity": "patient", "id": "P12", "op": "upsert"},
                    change(13, op="merge"),
                    change(14),
                ],
                "next_cursor": "c14",
                "has_more": False,
            }
        }
    )
    config = make_config(kind=SourceKind.JSON_API, auth=API_KEY)
    async with open_source(config, environ=environ, transport=httpx.MockTransport(feed)) as source:
        (page,) = await collect(source, "c9")
    assert [r.reason for r in page.rejects] == [
        "change without id",
        "change without an integer seq",
        "upsert without a data object",
        "unknown op 'merge'",
    ]
    assert [r.source_key for r in page.records] == ["patient/P000014"]


@pytest.mark.anyio
async def test_feed_that_does_not_move_is_a_protocol_error(make_config: Any, environ: Any) -> None:
    """has_more with the same cursor and no changes would loop for ever: refused."""
    feed = FakeFeed({"c1": {"changes": [], "next_cursor": "c1", "has_more": True}})
    config = make_config(kind=SourceKind.JSON_API, auth=API_KEY)
    async with open_source(config, environ=environ, transport=httpx.MockTransport(feed)) as source:
        with pytest.raises(SourceProtocolError, match="does not move on"):
            await collect(source, "c1")


@pytest.mark.anyio
async def test_wrong_api_key_is_auth_error(make_config: Any) -> None:
    """A refused key is SourceAuthError at once (nothing to refresh)."""
    feed = FakeFeed({None: {"changes": [], "next_cursor": "c0", "has_more": False}})
    config = make_config(kind=SourceKind.JSON_API, auth=API_KEY)
    transport = httpx.MockTransport(feed)
    async with open_source(config, environ={"RNA_KEY": "wrong"}, transport=transport) as source:
        with pytest.raises(SourceAuthError):
            await collect(source, None)
    assert len(feed.requests) == 1
