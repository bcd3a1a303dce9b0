"""Routing, page tokens, formats and the error table, without a server."""

from __future__ import annotations

import orjson
import pytest

from bcconnect.api._format import check_format, maybe_gzip, subset
from bcconnect.api._outcome import STATUS, error_to_outcome
from bcconnect.api._paging import PageState, decode_page, encode_page
from bcconnect.api._router import Route, route
from bcconnect.errors import (
    Category,
    ConflictError,
    InvalidRequest,
    MethodNotAllowed,
    NotAcceptable,
    ResourceNotFound,
    StoreError,
    TooManyRequests,
    Unsupported,
)
from bcconnect.search import Summary


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/metadata", Route("capabilities")),
        ("/Patient", Route("search-type", "Patient")),
        ("/Patient/", Route("search-type", "Patient")),
        ("/Patient/a-1.b", Route("read", "Patient", "a-1.b")),
        ("/Patient/a/_history", Route("history-instance", "Patient", "a")),
        ("/Patient/a/_history/3", Route("vread", "Patient", "a", "3")),
        ("/Patient/a/$everything", Route("everything", "Patient", "a")),
    ],
)
def test_routes(path: str, expected: Route) -> None:
    """Each interaction has one path shape."""
    assert route("GET", path) == expected


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("POST", "/Patient", MethodNotAllowed),
        ("DELETE", "/Patient/a", MethodNotAllowed),
        ("OPTIONS", "/metadata", MethodNotAllowed),
        ("GET", "/Observation/a/$everything", Unsupported),
        ("GET", "/Patient/_search", Unsupported),
        ("GET", "/_history", Unsupported),
        ("GET", "/patient/a", ResourceNotFound),
        ("GET", "/Patient/" + "x" * 65, ResourceNotFound),
        ("GET", "/Patient/a/b/c/d/e", ResourceNotFound),
    ],
)
def test_unroutable(method: str, path: str, error: type[Exception]) -> None:
    """Writes are 405 anywhere; unknown operations are unsupported; malformed paths not found."""
    with pytest.raises(error):
        route(method, path)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "Patient/p1", ("GET", "HEAD")),
        ("GET", "Patient/$match", ("POST",)),
        ("GET", "Group/g1/$recompute", ("POST",)),
        ("PUT", "$export", ("GET", "POST", "HEAD")),
        ("POST", "$export-file/abc/Patient.ndjson", ("GET", "HEAD")),
    ],
)
def test_a_405_names_what_the_target_takes(method: str, path: str, allow: tuple[str, ...]) -> None:
    """The Allow header of a 405 lists the target's methods (RFC 9110 §15.5.6), not a fixed pair."""
    with pytest.raises(MethodNotAllowed) as caught:
        route(method, path)
    assert caught.value.allow == allow
    assert error_to_outcome(caught.value)[2] == {"allow": ", ".join(allow)}


def test_page_tokens_round_trip_and_resist_tampering() -> None:
    """A token decodes to its state with the same key only."""
    state = PageState("search", "Patient", (("family", "smith"), ("_count", "5")), 42, 10)
    token = encode_page(state, b"k" * 32)
    assert decode_page(token, b"k" * 32) == state
    with pytest.raises(InvalidRequest):
        decode_page(token, b"other-key")
    with pytest.raises(InvalidRequest):
        decode_page(token[:-3] + "AAA", b"k" * 32)
    with pytest.raises(InvalidRequest):
        decode_page("!!!", b"k" * 32)


@pytest.mark.parametrize(
    ("fmt", "accept"),
    [(None, None), ("json", None), ("application/fhir+json", None), (None, "application/fhir+json"), (None, "*/*")],
)
def test_json_is_acceptable(fmt: str | None, accept: str | None) -> None:
    """FHIR JSON in any spelling, or anything."""
    check_format(fmt, accept)


@pytest.mark.parametrize(("fmt", "accept"), [("xml", None), ("text/turtle", None), (None, "application/fhir+xml")])
def test_other_formats_are_406(fmt: str | None, accept: str | None) -> None:
    """We only produce JSON."""
    with pytest.raises(NotAcceptable):
        check_format(fmt, accept)


def test_subset_tags_and_keeps_choice_elements() -> None:
    """_elements=value keeps valueQuantity; the result is tagged SUBSETTED."""
    body = orjson.dumps({"resourceType": "Observation", "id": "o", "valueQuantity": {"value": 1}, "status": "final"})
    trimmed = orjson.loads(subset(body, summary=None, elements=["value"]))
    assert set(trimmed) == {"resourceType", "id", "meta", "valueQuantity"}
    assert trimmed["meta"]["tag"][0]["code"] == "SUBSETTED"
    assert subset(body, summary=Summary.FALSE, elements=None) == body


def test_gzip_only_when_accepted_and_large() -> None:
    """Small bodies and clients without gzip get identity."""
    big = b"x" * 5000
    assert maybe_gzip(big, "gzip, deflate")[1]
    assert not maybe_gzip(big, "br")[1]
    assert not maybe_gzip(b"x", "gzip")[1]


def test_every_category_has_a_status_and_errors_map_to_outcomes() -> None:
    """The one error table: categories, store failures (503) and crashes (500) never leak details."""
    assert set(STATUS) == set(Category)
    status, body, headers = error_to_outcome(TooManyRequests("slow down", retry_after=2.5))
    assert status == 429
    assert headers == {"retry-after": "2"}
    assert orjson.loads(body)["issue"][0]["code"] == "throttled"
    status, body, _ = error_to_outcome(ConflictError("secret sql detail"))
    assert status == 503
    assert b"secret" not in body
    assert error_to_outcome(StoreError("x"))[0] == 503
    status, body, _ = error_to_outcome(ZeroDivisionError("boom"))
    assert status == 500
    assert b"boom" not in body
    assert error_to_outcome(MethodNotAllowed("no"))[2] == {"allow": "GET, HEAD"}
