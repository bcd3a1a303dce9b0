"""Fuzzing generated from the CapabilityStatement itself: every advertised type, search parameter (by its type),
modifier, result parameter and operation, with hostile values (huge integers, Unicode digits, separators,
wrong JSON types in ``$match`` bodies). No request may get a 5xx or a stack trace.

Hypothesis draws from the statement the running endpoint serves, so a parameter or operation added later is
fuzzed without touching this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.security_world import Endpoint, secured

pytestmark = pytest.mark.slow

HUGE = ("99999999999999999999", "9" * 400, "18446744073709551616", "9223372036854775808", "-1", "0")
UNICODE_DIGITS = ("\u00b2", "\u0663", "\uff11", "\u2460", "1\u00b2", "\u0967\u0968")
HOSTILE = (*HUGE, *UNICODE_DIGITS, "", ",", "|", "\\", "$", "%", "'", '"', "\x00", "a" * 300, "eq", "ge", "ap-")
_TYPED = {
    "token": st.one_of(
        st.sampled_from(["http://snomed.info/sct|38341003", "|x", "x|", "a|b|c", "9990000018"]), st.text(max_size=20)
    ),
    "string": st.text(max_size=30),
    "date": st.one_of(
        st.sampled_from(["2024", "2024-02", "2024-02-30", "ge2024-01-01", "lt2024-01-01T10:00:00Z", "sa99999"]),
        st.text(max_size=25),
    ),
    "reference": st.one_of(
        st.sampled_from(["Patient/p1", "p1", "Patient/", "/x", "http://x/fhir/Patient/p1"]), st.text(max_size=20)
    ),
    "quantity": st.one_of(
        st.sampled_from(["5.4", "gt5|http://unitsofmeasure.org|mmol/L", "1e400", "NaN", "ap-0"]), st.text(max_size=20)
    ),
    "number": st.one_of(st.sampled_from(["1", "1e400", "-0", "inf"]), st.text(max_size=10)),
    "uri": st.text(max_size=30),
}
MODIFIERS = (
    "",
    ":missing",
    ":not",
    ":exact",
    ":contains",
    ":text",
    ":below",
    ":Patient",
    ":bogus",
    ".identifier",
    ".name",
)
RESULT_PARAMS = ("_count", "_getpagesoffset", "_sort", "_total", "_summary", "_elements", "_include", "_revinclude")
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
PATIENT_FIELDS = ("name", "telecom", "birthDate", "gender", "identifier", "address", "given", "family")


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BlockingPortal, Endpoint, dict[str, Any]]]:
    """One secured endpoint on SQLite (served from a portal thread) and its CapabilityStatement."""
    data_dir = tmp_path_factory.mktemp("capability-fuzz")
    with start_blocking_portal(backend="asyncio") as portal:
        manager = secured(
            f"sqlite:///{data_dir / 'store.db'}", data_dir, rate_limit_per_second=1e6, rate_limit_burst=1_000_000
        )
        with portal.wrap_async_context_manager(manager) as opened:
            capability = portal.call(lambda: opened.client.get("/metadata")).json()
            yield portal, opened, capability


def _search(data: st.DataObject, resource: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    params: list[tuple[str, str]] = []
    for _ in range(data.draw(st.integers(1, 4))):
        if resource.get("searchParam") and data.draw(st.booleans()):
            param = data.draw(st.sampled_from(resource["searchParam"]))
            name = param["name"] + data.draw(st.sampled_from(MODIFIERS))
            value = data.draw(st.one_of(_TYPED.get(param["type"], st.text()), st.sampled_from(HOSTILE)))
        else:
            name = data.draw(st.sampled_from(RESULT_PARAMS))
            choices = [*HOSTILE, *resource.get("searchInclude", []), *resource.get("searchRevInclude", [])]
            choices += [p["name"] for p in resource.get("searchParam", [])][:5]
            value = data.draw(st.sampled_from(choices))
        params.append((name, value))
    return f"/{resource['type']}", params


def _operation(data: st.DataObject) -> tuple[str, str, list[tuple[str, str]], bytes | None]:
    kind = data.draw(st.sampled_from(["everything", "match", "history", "vread", "read"]))
    pid = data.draw(st.sampled_from(["p1", "p2", "p3", "nobody", "p1" * 40]))
    if kind == "everything":
        params = [
            (data.draw(st.sampled_from(["_count", "_since", "_type", "start", "end", "_page_token", "x"])),
             data.draw(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12))))
            for _ in range(data.draw(st.integers(0, 3)))
        ]  # fmt: skip
        return "GET", f"/Patient/{pid}/$everything", params, None
    if kind == "history":
        params = [
            (data.draw(st.sampled_from(["_count", "_since", "_getpagesoffset"])), data.draw(st.sampled_from(HOSTILE)))
        ]
        return "GET", f"/Patient/{pid}/_history", params, None
    if kind == "vread":
        return "GET", f"/Patient/{pid}/_history/{data.draw(st.sampled_from((*HUGE, '1', '01')))}", [], None
    if kind == "read":
        return (
            "GET",
            f"/Patient/{pid}",
            [("_summary", data.draw(st.sampled_from(["true", "count", "x", *HOSTILE])))],
            None,
        )
    patient: dict[str, Any] = {"resourceType": "Patient"}
    for field in data.draw(st.lists(st.sampled_from(PATIENT_FIELDS), max_size=4)):
        patient[field] = data.draw(JSON_VALUES)
    body = data.draw(
        st.sampled_from(
            [
                {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient}]},
                {"resourceType": "Parameters", "parameter": data.draw(JSON_VALUES)},
                {
                    "resourceType": "Parameters",
                    "parameter": [{"name": "count", "valueInteger": data.draw(JSON_VALUES)}],
                },
                patient,
                data.draw(JSON_VALUES),
            ]
        )
    )
    return "POST", "/Patient/$match", [], orjson.dumps(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_requests_generated_from_the_capability_statement_never_get_a_5xx(
    target: tuple[BlockingPortal, Endpoint, dict[str, Any]], data: st.DataObject
) -> None:
    """Searches on every advertised parameter and every operation, with hostile values: always < 500."""
    portal, endpoint, capability = target
    resources = capability["rest"][0]["resource"]
    headers = endpoint.token("user/*.rs bcconnect/sensitive.read")
    if data.draw(st.integers(0, 2)) == 0:
        method, path, params, body = _operation(data)
    else:
        method, body = "GET", None
        path, params = _search(data, data.draw(st.sampled_from(resources)))
    content_type = {"content-type": "application/fhir+json"} if body is not None else {}
    response = portal.call(
        lambda: endpoint.client.request(method, path, params=params, content=body, headers={**headers, **content_type})
    )
    assert response.status_code < 500, (method, path, params, body, response.text)
    assert "Traceback" not in response.text


def _match_body(patient: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient}]}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/Patient/$match", {"resourceType": "Parameters", "parameter": "x"}),
        ("POST", "/Patient/$match", _match_body({"resourceType": "Patient", "name": "x"})),
        ("POST", "/Patient/$match", _match_body({"resourceType": "Patient", "telecom": [1]})),
        ("GET", "/Patient/p1/_history/99999999999999999999", None),
        ("GET", "/Patient/p1/_history?_getpagesoffset=99999999999999999999", None),
        ("GET", "/AuditEvent?patient=p1&_getpagesoffset=99999999999999999999", None),
        ("GET", "/Patient?_count=%C2%B2", None),
        ("GET", "/Patient/p1/$everything?_count=%C2%B2", None),
        ("GET", "/Patient/p1/_history?_count=%D9%A3", None),
    ],
)  # fmt: skip
def test_the_four_500s_seen_are_4xx_now(
    target: tuple[BlockingPortal, Endpoint, dict[str, Any]], method: str, path: str, body: object
) -> None:
    """The exact requests from the issue: a 4xx with an OperationOutcome (or an empty page), never a 5xx."""
    portal, endpoint, _ = target
    headers = endpoint.token("user/*.rs user/AuditEvent.rs")
    content = orjson.dumps(body) if body is not None else None
    response = portal.call(lambda: endpoint.client.request(method, path, content=content, headers=headers))
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"
