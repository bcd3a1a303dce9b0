"""The fhir_api source: paging, duplicates across pages, watermarks, rejects, deletes and id sweeps."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import orjson
import pytest

from bcconnect.adapters import FhirApiSource, Page, open_source
from bcconnect.errors import ConfigError

BASE = "https://rl4.test/fhir/R4"


def patient(rid: str, version: str, updated: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": rid, "meta": {"versionId": version, "lastUpdated": updated}}


def bundle(*resources: dict[str, Any], next_url: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", **extra}
    body["entry"] = [{"resource": r} if "resourceType" in r or "id" in r else r for r in resources]
    if next_url:
        body["link"] = [{"relation": "next", "url": next_url}]
    return body


class FakeFhir:
    """Answers by path from queued bundles; records every data request."""

    def __init__(self, routes: dict[str, list[dict[str, Any]]]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        self.requests.append(request)
        key = request.url.path + (f"?{request.url.query.decode()}" if b"page=" in request.url.query else "")
        queue = self.routes.get(key) or self.routes.get(request.url.path)
        if not queue:
            return httpx.Response(200, json=bundle(meta={"lastUpdated": "2026-11-22T09:59:59.000Z"}))
        return httpx.Response(200, json=queue.pop(0), headers={"Date": "Sun, 22 Nov 2026 10:00:00 GMT"})


async def collect(source: Any, cursor: str | None) -> list[Page]:
    async with contextlib.aclosing(source.pages(cursor)) as pages:
        return [page async for page in pages]


@pytest.mark.anyio
async def test_pages_follow_next_links_and_drop_repeated_versions(make_config: Any, environ: Any) -> None:
    """A version that moves to the next page while paging is yielded once; a new version is yielded again."""
    fake = FakeFhir(
        {
            "/fhir/R4/Patient": [
                bundle(
                    patient("a", "1", "2026-11-22T09:00:00.000Z"),
                    patient("b", "1", "2026-11-22T09:01:00.000Z"),
                    next_url=f"{BASE}/Patient?page=2",
                    meta={"lastUpdated": "2026-11-22T09:30:00.000Z"},
                )
            ],
            "/fhir/R4/Patient?page=2": [
                bundle(
                    patient("b", "1", "2026-11-22T09:01:00.000Z"),
                    patient("a", "2", "2026-11-22T09:05:00.000Z"),
                    next_url=f"{BASE}/Patient?page=3",
                )
            ],
            "/fhir/R4/Patient?page=3": [bundle()],
        }
    )
    config = make_config(resource_types=("Patient",), page_size=2)
    async with open_source(config, environ=environ, transport=httpx.MockTransport(fake)) as source:
        pages = await collect(source, None)
    keys = [(r.source_key, r.version) for p in pages for r in p.records]
    assert keys == [("Patient/a", "1"), ("Patient/b", "1"), ("Patient/a", "2")]
    first = fake.requests[0].url.params
    assert first["_sort"] == "_lastUpdated"
    assert first["_count"] == "2"
    assert "_lastUpdated" not in first  # no watermark yet: from the beginning
    assert [r.url.params.get("page") for r in fake.requests] == [None, "2", "3"]
    cursor = orjson.loads(pages[-1].cursor)
    assert cursor["types"]["Patient"] == {
        "watermark": "2026-11-22T09:05:00.000Z",
        "boundary": ["a/2"],
        "deletes_since": "2026-11-22T09:30:00.000Z",
    }
    record = pages[0].records[0]
    assert orjson.loads(record.payload) == patient("a", "1", "2026-11-22T09:00:00.000Z")
    assert record.last_updated == "2026-11-22T09:00:00.000Z"
    assert record.record_type == "Patient"
    assert not record.deleted


@pytest.mark.anyio
async def test_resume_rereads_overlap_and_skips_boundary_versions(make_config: Any, environ: Any) -> None:
    """From a cursor: _lastUpdated=ge(watermark − overlap); versions on the watermark are not repeated."""
    cursor = orjson.dumps(
        {
            "v": 1,
            "types": {
                "Patient": {
                    "watermark": "2026-11-22T09:05:00.000Z",
                    "boundary": ["a/2"],
                    "deletes_since": "2026-11-22T09:30:00.000Z",
                }
            },
        }
    ).decode()
    fake = FakeFhir(
        {
            "/fhir/R4/Patient": [
                bundle(
                    patient("a", "2", "2026-11-22T09:05:00.000Z"),
                    patient("c", "1", "2026-11-22T09:06:00.000Z"),
                )
            ]
        }
    )
    config = make_config(resource_types=("Patient",), overlap_seconds=300)
    async with open_source(config, environ=environ, transport=httpx.MockTransport(fake)) as source:
        pages = await collect(source, cursor)
    assert fake.requests[0].url.params["_lastUpdated"] == "ge2026-11-22T09:00:00.000Z"
    assert [r.source_key for p in pages for r in p.records] == ["Patient/c"]
    history = fake.requests[1]
    assert history.url.path == "/fhir/R4/Patient/_history"
    assert history.url.params["_since"] == "2026-11-22T09:25:00.000Z"


@pytest.mark.anyio
async def test_empty_first_page_yields_only_the_cursor(make_config: Any, environ: Any) -> None:
    """An empty search yields no records; the first run records where delete tracking starts."""
    fake = FakeFhir({})
    config = make_config(resource_types=("Patient", "Encounter"))
    async with open_source(config, environ=environ, transport=httpx.MockTransport(fake)) as source:
        pages = await collect(source, None)
    assert all(not p.records and not p.rejects for p in pages)
    state = orjson.loads(pages[-1].cursor)["types"]
    assert state["Patient"] == {"deletes_since": "2026-11-22T09:59:59.000Z"}
    assert set(state) == {"Patient", "Encounter"}
    assert [r.url.path for r in fake.requests] == ["/fhir/R4/Patient", "/fhir/R4/Encounter"]


@pytest.mark.anyio
async def test_entries_without_id_or_type_are_rejects(make_config: Any, environ: Any) -> None:
    """An entry without resource.id, resourceType or resource is a RawReject that says which entry."""
    fake = FakeFhir(
        {
            "/fhir/R4/Patient": [
                bundle(
                    {"resourceType": "Patient", "meta": {"versionId": "1"}},
                    {"id": "x"},
                    {"fullUrl": "urn:uuid:1"},
                    patient("ok", "1", "2026-11-22T09:00:00.000Z"),
                )
            ]
        }
    )
    config = make_config(resource_types=("Patient",))
    async with open_source(config, environ=environ, transport=httpx.MockTransport(fake)) as source:
        pages = await collect(source, None)
    rejects = [r for p in pages for r in p.rejects]
    assert [r.reason for r in rejects] == [
        "entry 1 has no resource.id",
        "entry 2 has no resource.resourceType",
        "entry 3 has no resource",
    ]
    assert all(r.record_type == "Patient" for r in rejects)
    assert [r.source_key for p in pages for r in p.records] == ["Patient/ok"]


@pytest.mark.anyio
async def test_deletes_come_from_history(make_config: Any, environ: Any) -> None:
    """DELETE history entries become deleted records; updates in the history are left to the search."""
    cursor = orjson.dumps({"v": 1, "types": {"Patient": {"deletes_since": "2026-11-22T09:00:00.000Z"}}}).decode()
    history = {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [
            {
                "request": {"method": "DELETE", "url": "Patient/gone"},
                "response": {"status": "204", "lastModified": "2026-11-22T09:40:00.000Z", "etag": 'W/"3"'},
            },
            {
                "resource": patient("kept", "2", "2026-11-22T09:50:00.000Z"),
                "request": {"method": "PUT", "url": "Patient/kept"},
                "response": {"status": "200", "lastModified": "2026-11-22T09:50:00.000Z"},
            },
            {"request": {"method": "DELETE", "url": ""}, "response": {"status": "204"}},
        ],
    }
    fake = FakeFhir({"/fhir/R4/Patient/_history": [history]})
    config = make_config(resource_types=("Patient",))
    async with open_source(config, environ=environ, transport=httpx.MockTransport(fake)) as source:
        pages = await collect(source, cursor)
    deleted = [r for p in pages for r in p.records if r.deleted]
    assert [(r.source_key, r.version, r.last_updated) for r in deleted] == [
        ("Patient/gone", "3", "2026-11-22T09:40:00.000Z")
    ]
    assert [r.reason for p in pages for r in p.rejects] == ["DELETE entry without Type/id in request.url"]
    assert orjson.loads(pages[-1].cursor)["types"]["Patient"]["deletes_since"] == "2026-11-22T09:50:00.000Z"


@pytest.mark.anyio
async def test_list_source_ids_pages_the_id_listing(make_config: Any, environ: Any) -> None:
    """The reconciliation sweep lists ids with _elements=id across pages."""
    fake = FakeFhir(
        {
            "/fhir/R4/Patient": [
                bundle({"resourceType": "Patient", "id": "a"}, next_url=f"{BASE}/Patient?page=2"),
            ],
            "/fhir/R4/Patient?page=2": [bundle({"resourceType": "Patient", "id": "b"})],
        }
    )
    async with open_source(make_config(), environ=environ, transport=httpx.MockTransport(fake)) as source:
        assert isinstance(source, FhirApiSource)
        ids = [i async for i in source.list_source_ids("Patient")]
    assert ids == ["a", "b"]
    assert fake.requests[0].url.params["_elements"] == "id"


@pytest.mark.anyio
async def test_next_link_to_itself_or_elsewhere_is_a_protocol_error(make_config: Any, environ: Any) -> None:
    """A next link that leaves the source's origin stops that type with a SourceProtocolError, recorded as the
    type's failure (the credentials never go to the other host)."""
    fake = FakeFhir({"/fhir/R4/Patient": [bundle(next_url="https://elsewhere.test/fhir/R4/Patient?page=2")]})
    config = make_config(resource_types=("Patient",))
    async with open_source(config, environ=environ, transport=httpx.MockTransport(fake)) as source:
        assert isinstance(source, FhirApiSource)
        await collect(source, None)
        [failure] = source.failures
        assert failure.resource_type == "Patient"
        assert "another origin" in failure.message
    assert all(r.url.host == "rl4.test" for r in fake.requests)


@pytest.mark.anyio
async def test_not_a_bundle_is_a_protocol_error(make_config: Any, environ: Any) -> None:
    """An answer that is not a Bundle is refused (that type fails; the run goes on)."""
    fake = FakeFhir({"/fhir/R4/Patient": [{"resourceType": "OperationOutcome"}]})
    config = make_config(resource_types=("Patient",))
    async with open_source(config, environ=environ, transport=httpx.MockTransport(fake)) as source:
        assert isinstance(source, FhirApiSource)
        assert await collect(source, None) == []
        assert "not a FHIR Bundle" in source.failures[0].message


@pytest.mark.anyio
async def test_bad_cursor_is_named(make_config: Any, environ: Any) -> None:
    """A cursor this source did not write is a ConfigError naming the source."""
    async with open_source(make_config(), environ=environ, transport=httpx.MockTransport(FakeFhir({}))) as source:
        with pytest.raises(ConfigError, match="'RL4' is not a fhir_api cursor"):
            await collect(source, '{"types": {"Patient": {"watermark": "soon"}}}')
