"""The FHIR endpoint over a real store: interactions, errors as OperationOutcome, paging, formats."""

from __future__ import annotations

import gzip
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson
import pytest

from bcconnect.store import ResourceWrite, delete_resource, put_resources
from bcconnect.view import View

pytestmark = pytest.mark.anyio
FHIR_JSON = "application/fhir+json"


def outcome(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert response.headers["content-type"].startswith(FHIR_JSON)
    return body


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((lk["url"] for lk in bundle["link"] if lk["relation"] == relation), None)


async def test_read_serves_stored_json_with_etag_and_last_modified(client: httpx.AsyncClient) -> None:
    """read: the stored JSON, W/"version" ETag, Last-Modified; If-None-Match gives 304."""
    response = await client.get("/Patient/p1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json; charset=utf-8"
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["last-modified"].endswith("GMT")
    body = response.json()
    assert body["id"] == "p1"
    assert body["meta"]["versionId"] == "1"
    again = await client.get("/Patient/p1", headers={"if-none-match": 'W/"1"'})
    assert again.status_code == 304
    assert again.content == b""
    assert (await client.get("/Patient/p1", headers={"if-none-match": 'W/"0"'})).status_code == 200
    since = await client.get("/Patient/p1", headers={"if-modified-since": response.headers["last-modified"]})
    assert since.status_code == 304
    old = await client.get("/Patient/p1", headers={"if-modified-since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert old.status_code == 200
    assert (await client.get("/Patient/p1", headers={"if-modified-since": "garbage"})).status_code == 200


async def test_vread_history_and_deletion(client: httpx.AsyncClient, view: View) -> None:
    """vread serves old versions; _history lists versions newest first; a deleted resource reads as 410."""
    changed = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}, "note": [{"text": "x"}]}
    write = ResourceWrite("Condition", "c1", orjson.dumps(changed), source="test", compartment="p1")
    await view.store.write(lambda tx: put_resources(tx, [write]))
    await view.store.write(lambda tx: delete_resource(tx, "Condition", "c1"))
    assert (await client.get("/Condition/c1/_history/2")).json()["note"] == [{"text": "x"}]
    assert (await client.get("/Condition/c1")).status_code == 410
    assert (await client.get("/Condition/c1/_history/3")).status_code == 410
    assert (await client.get("/Condition/c1/_history/9")).status_code == 404
    history = (await client.get("/Condition/c1/_history")).json()
    assert history["type"] == "history"
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"3"', 'W/"2"', 'W/"1"']
    assert history["entry"][0]["request"]["method"] == "DELETE"
    assert "resource" not in history["entry"][0]


async def test_every_write_is_405_with_an_outcome(client: httpx.AsyncClient) -> None:
    """The endpoint is read-only, on type and instance paths alike."""
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/Patient", "/Patient/p1", "/Patient/p1/$everything"):
            response = await client.request(method, path, content=b"{}")
            assert response.status_code == 405, (method, path)
            assert response.headers["allow"] == "GET, HEAD"
            assert outcome(response)["issue"][0]["code"] == "not-supported"


CLIENT_ERRORS = [
    ("/Patient/nope", 404),
    ("/Spaceship/1", 404),
    ("/Spaceship", 404),
    ("/Patient/bad id!", 404),
    ("/Patient/p1/_history/x", 404),
    ("/Patient?birthdate=yesterday", 400),
    ("/Patient?shoe-size=9", 400),
    ("/Patient?family:fuzzy=x", 400),
    ("/Patient?_count=-1", 400),
    ("/Patient?_sort=shoe-size", 400),
    ("/Patient?_page_token=forged", 400),
    ("/Patient/p1/$match", 400),
    ("/Patient/p1?_format=xml", 406),
    ("/", 400),
]


async def test_client_errors_are_outcomes_never_500(client: httpx.AsyncClient) -> None:
    """Unknown types, ids, parameters and formats give the right status and an OperationOutcome."""
    for path, status in CLIENT_ERRORS:
        response = await client.get(path)
        assert response.status_code == status, path
        outcome(response)


async def test_outside_the_base_path_is_404(client: httpx.AsyncClient) -> None:
    """Requests that miss the FHIR base get a 404 OperationOutcome."""
    response = await client.get("http://testserver/elsewhere")
    assert response.status_code == 404
    outcome(response)


async def test_lenient_handling_ignores_unknown_parameters_with_a_warning(client: httpx.AsyncClient) -> None:
    """Prefer: handling=lenient turns the 400 into a warning entry."""
    response = await client.get("/Patient?shoe-size=9&family=smith", headers={"prefer": "handling=lenient"})
    assert response.status_code == 200
    bundle = response.json()
    assert ids(bundle) == ["p1"]
    assert bundle["entry"][-1]["search"]["mode"] == "outcome"


async def test_the_lenient_self_link_names_only_the_parameters_used(client: httpx.AsyncClient) -> None:
    """R4 search §3.1.1.6: the self link shows what the search applied, so an ignored parameter is left out of
    it and of the next pages (which then work without the Prefer header)."""
    lenient = {"prefer": "handling=lenient"}
    response = await client.get(
        "/Observation?shoe-size=9&subject=p1&_count=5&_include=Observation:subject",
        headers=lenient,
    )
    assert response.status_code == 200
    bundle = response.json()
    self_query = parse_qsl(urlsplit(link(bundle, "self") or "").query)
    assert ("shoe-size", "9") not in self_query
    assert ("subject", "p1") in self_query
    assert ("_include", "Observation:subject") in self_query
    next_page = await client.get(link(bundle, "next") or "")
    assert next_page.status_code == 200, next_page.text
    assert "shoe-size" not in (link(next_page.json(), "self") or "")


async def test_search_bundle_paging_is_snapshot_consistent(client: httpx.AsyncClient, view: View) -> None:
    """Following next links while new data arrives returns exactly the first page's snapshot."""
    first = (await client.get("/Observation?subject=p1&_sort=date&_count=5")).json()
    assert first["type"] == "searchset"
    assert first["total"] == 12
    assert ids(first) == ["o1", "o2", "o3", "o4", "o5"]
    assert first["entry"][0]["fullUrl"] == "http://testserver/fhir/Observation/o1"
    from_conftest = {
        "resourceType": "Observation",
        "id": "o0",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2020-01-01",
    }
    await view.store.write(
        lambda tx: put_resources(tx, [ResourceWrite("Observation", "o0", orjson.dumps(from_conftest), "test", "p1")])
    )
    seen = ids(first)
    url = link(first, "next")
    pages = 0
    while url and pages < 10:
        page = (await client.get(url)).json()
        seen += ids(page)
        url = link(page, "next")
        pages += 1
    assert seen == [f"o{i}" for i in range(1, 13)]
    fresh = (await client.get("/Observation?subject=p1&_sort=date&_count=1")).json()
    assert ids(fresh) == ["o0"]


async def test_count_is_capped_and_summary_count(client: httpx.AsyncClient) -> None:
    """_count above the maximum is capped; _summary=count returns only the total."""
    capped = (await client.get("/Observation?_count=500")).json()
    assert len(ids(capped)) == 10
    counted = (await client.get("/Observation?_summary=count")).json()
    assert counted["total"] == 13
    assert "entry" not in counted or counted["entry"] == []


async def test_include_revinclude_and_chaining(client: httpx.AsyncClient) -> None:
    """_include adds the subject as mode=include; chaining finds observations by patient identifier."""
    bundle = (await client.get("/Observation?_id=o1&_include=Observation:subject")).json()
    assert ids(bundle) == ["o1"]
    assert ids(bundle, "include") == ["p1"]
    bundle = (await client.get("/Patient?_id=p2&_revinclude=Observation:subject")).json()
    assert ids(bundle, "include") == ["x1"]
    bundle = (await client.get("/Observation?subject:Patient.identifier=9000000017")).json()
    assert ids(bundle) == ["x1"]


async def test_summary_and_elements_subset_and_tag(client: httpx.AsyncClient) -> None:
    """_summary=true drops non-summary elements (text); _elements keeps what was asked; both tag SUBSETTED."""
    summary = (await client.get("/Patient?_id=p1&_summary=true")).json()["entry"][0]["resource"]
    assert "text" not in summary
    assert "name" in summary
    assert summary["meta"]["tag"][-1]["code"] == "SUBSETTED"
    elements = (await client.get("/Patient/p1?_elements=gender")).json()
    assert set(elements) == {"resourceType", "id", "meta", "gender"}


async def test_everything_pages_through_the_compartment(client: httpx.AsyncClient) -> None:
    """$everything returns the patient, their resources and referenced practitioners, page by page."""
    seen: list[str] = []
    url: str | None = "/Patient/p1/$everything?_count=4"
    pages = 0
    while url and pages < 10:
        page = (await client.get(url)).json()
        seen += [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in page["entry"]]
        url = link(page, "next")
        pages += 1
    assert len(seen) == 15
    assert {"Patient/p1", "Practitioner/dr1", "Condition/c1"} <= set(seen)
    assert "Patient/p2" not in seen
    assert (await client.get("/Patient/nope/$everything")).status_code == 404
    typed = (await client.get("/Patient/p1/$everything?_type=Condition")).json()
    assert ids(typed) == ["c1"]


async def test_pretty_and_gzip(client: httpx.AsyncClient) -> None:
    """_pretty=true indents; gzip is used when accepted and worthwhile."""
    pretty = await client.get("/Patient/p1?_pretty=true")
    assert b'\n  "resourceType"' in pretty.content
    big = await client.get("/Observation?_count=10", headers={"accept-encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip"
    assert orjson.loads(big.content)["resourceType"] == "Bundle"  # httpx decodes it
    raw = await client.get("/Observation?_count=10", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert len(gzip.compress(raw.content)) < len(raw.content)


async def test_head_has_headers_but_no_body(client: httpx.AsyncClient) -> None:
    """HEAD answers like GET without the body."""
    response = await client.head("/Patient/p1")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["etag"] == 'W/"1"'


async def test_everything_care_dates_and_since(client: httpx.AsyncClient) -> None:
    """start/end keep resources with a clinical date in range (undated ones stay); _since uses lastUpdated."""
    bundle = (await client.get("/Patient/p1/$everything?start=2024-01-03&end=2024-01-04&_count=50")).json()
    found = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    assert {"Observation/o3", "Observation/o4"} <= found
    assert "Observation/o1" not in found
    assert "Condition/c1" in found  # no clinical date: kept
    later = (await client.get("/Patient/p1/$everything?_since=2999-01-01")).json()
    assert later.get("entry", []) == []
    assert (await client.get("/Patient/p1/$everything?shoe=9")).status_code == 400
    assert (await client.get("/Patient/p1/$everything?start=soon")).status_code == 400


async def test_history_paging(client: httpx.AsyncClient, view: View) -> None:
    """Instance history pages with _count and a next link."""
    for family in ("A", "B", "C"):
        body = orjson.dumps({"resourceType": "Patient", "id": "p2", "name": [{"family": family}]})
        write = ResourceWrite("Patient", "p2", body, "test", "p2")
        await view.store.write(partial(put_resources, writes=[write]))
    first = (await client.get("/Patient/p2/_history?_count=2")).json()
    assert [e["response"]["etag"] for e in first["entry"]] == ['W/"4"', 'W/"3"']
    second = (await client.get(link(first, "next") or "")).json()
    assert [e["response"]["etag"] for e in second["entry"]] == ['W/"2"', 'W/"1"']
    assert (await client.get("/Patient/nobody/_history")).status_code == 404
