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


def _checked_patient(resource: dict[str, Any]) -> dict[str, Any]:
    """The Patient if it is a valid FHIR R4 Patient (typed parsing: every element of the right JSON type);
    otherwise a 400 naming the first problem. The patient index is never handed a malformed resource."""
    from fhir.resources.R4B.patient import Patient  # imported on first $match only (a large model module)

    try:
        Patient.model_validate(resource)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        first = str(exc).splitlines()[1:2] or ["invalid"]
        raise InvalidRequest(f"resource: not a valid Patient ({first[0].strip()})", expression=["resource"]) from None
    return resource


def parse_match_parameters(parameters: Mapping[str, Any]) -> tuple[dict[str, Any], int, bool]:
    """The Patient to match, ``count`` and ``onlyCertainMatches`` from a Parameters resource (or a bare Patient)."""
    if parameters.get("resourceType") == "Patient":
        return _checked_patient(dict(parameters)), 10, False
    if parameters.get("resourceType") != "Parameters":
        raise InvalidRequest(
            "$match expects a Parameters resource with a 'resource' parameter", expression=["resource"]
        )
    resource: dict[str, Any] | None = None
    count, only_certain = 10, False
    listed = parameters.get("parameter") or []
    if not isinstance(listed, list) or not all(isinstance(p, dict) for p in listed):
        raise InvalidRequest("parameter: expected a list of parameter objects", expression=["parameter"])
    for param in listed:
        name = param.get("name")
        if name == "resource":
            resource = param.get("resource")
        elif name == "count":
            value = param.get("valueInteger")
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidRequest("count: expected a positive integer", expression=["count"])
            count = min(value, _MAX_COUNT)
        elif name == "onlyCertainMatches":
            only_certain = param.get("valueBoolean") is True
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise InvalidRequest("$match needs a Patient in the 'resource' parameter", expression=["resource"])
    return _checked_patient(resource), count, only_certain


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
