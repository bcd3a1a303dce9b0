"""Pure helpers of the view: $match parameters and Bundle, freshness extension and header."""

from __future__ import annotations

import orjson
import pytest

from bcconnect.errors import InvalidRequest
from bcconnect.identity import MatchCandidate
from bcconnect.view import MATCH_GRADE_EXTENSION, SourceFreshness, freshness_extension, freshness_header
from bcconnect.view._match import match_bundle, parse_match_parameters


def test_match_parameters_are_read_and_checked() -> None:
    patient = {"resourceType": "Patient", "birthDate": "1950-03-14"}
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": patient},
            {"name": "count", "valueInteger": 3},
            {"name": "onlyCertainMatches", "valueBoolean": True},
        ],
    }
    assert parse_match_parameters(params) == (patient, 3, True)
    with pytest.raises(InvalidRequest):
        parse_match_parameters({"resourceType": "Parameters", "parameter": []})
    with pytest.raises(InvalidRequest):
        parse_match_parameters(
            {**params, "parameter": [*params["parameter"][:1], {"name": "count", "valueInteger": 0}]}
        )


def test_match_bundle_carries_score_and_grade() -> None:
    body = orjson.dumps({"resourceType": "Patient", "id": "p1"})
    bundle = orjson.loads(match_bundle("http://x/fhir", [(MatchCandidate("p1", 0.9, "probable", "fs-match"), body)]))
    (entry,) = bundle["entry"]
    assert entry["fullUrl"] == "http://x/fhir/Patient/p1"
    assert entry["search"] == {
        "extension": [{"url": MATCH_GRADE_EXTENSION, "valueCode": "probable"}],
        "mode": "match",
        "score": 0.9,
    }


def test_freshness_header_and_extension_state_each_source() -> None:
    items = (
        SourceFreshness("rl4", "RL4", "2026-11-22T10:00:00Z", 60.0, 3600.0, False),
        SourceFreshness("rna", "RNA", None, None, 3600.0, True),
    )
    assert freshness_header(items) == "RL4=2026-11-22T10:00:00Z;age=60;fresh, RNA=never;stale"
    groups = freshness_extension(items)["extension"]
    assert [g["extension"][-1] for g in groups] == [
        {"url": "stale", "valueBoolean": False},
        {"url": "stale", "valueBoolean": True},
    ]
