"""``Patient/$match`` for the view: read the Parameters, ask the patient index, answer a searchset Bundle.

Each entry is the candidate's golden Patient with ``search.mode = match``, ``search.score`` (0–1) and the
``match-grade`` extension (certain | probable | possible), best first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from bcconnect.errors import InvalidRequest
from bcconnect.identity import MatchCandidate

MATCH_GRADE_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/match-grade"
_MAX_COUNT: Final = 50


def parse_match_parameters(parameters: Mapping[str, Any]) -> tuple[dict[str, Any], int, bool]:
    """The Patient to match, ``count`` and ``onlyCertainMatches`` from a Parameters resource (or a bare Patient)."""
    if parameters.get("resourceType") == "Patient":
        return dict(parameters), 10, False
    if parameters.get("resourceType") != "Parameters":
        raise InvalidRequest(
            "$match expects a Parameters resource with a 'resource' parameter", expression=["resource"]
        )
    resource: dict[str, Any] | None = None
    count, only_certain = 10, False
    for param in parameters.get("parameter") or ():
        name = param.get("name")
        if name == "resource":
            resource = param.get("resource")
        elif name == "count":
            value = param.get("valueInteger")
            if not isinstance(value, int) or value < 1:
                raise InvalidRequest("count: expected a positive integer", expression=["count"])
            count = min(value, _MAX_COUNT)
        elif name == "onlyCertainMatches":
            only_certain = param.get("valueBoolean") is True
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise InvalidRequest("$match needs a Patient in the 'resource' parameter", expression=["resource"])
    return resource, count, only_certain


def match_bundle(base_url: str, found: list[tuple[MatchCandidate, bytes]]) -> bytes:
    """The searchset Bundle of $match: golden Patients with score and match grade."""
    entries = []
    for candidate, body in found:
        search = {
            "extension": [{"url": MATCH_GRADE_EXTENSION, "valueCode": candidate.grade}],
            "mode": "match",
            "score": candidate.score,
        }
        entries.append(
            b'{"fullUrl":' + orjson.dumps(f"{base_url}/Patient/{candidate.person_id}") + b',"resource":' + body
            + b',"search":' + orjson.dumps(search) + b"}"
        )  # fmt: skip
    head = orjson.dumps({"resourceType": "Bundle", "type": "searchset", "total": len(entries)})
    return head[:-1] + b',"entry":[' + b",".join(entries) + b"]}"
