"""The server pack catches what it claims: each check fails, alone, against a target that breaks its rule.

The target is our endpoint behind a proxy that injects one deviation at a time. For every check a mutation
breaks exactly that rule; the test runs the whole pack and expects the failing set to grow by that check and
nothing else; and against the faithful target every check passes (the baseline has no failing check).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from bcconnect.conformance import Outcome, Report, console_summary, get_pack, run_pack
from support.conformance_target import BROWN, FhirTarget
from support.loopback import BreakingProxy, Exchange, Mutation, breaking_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _options(target: FhirTarget) -> dict[str, str]:
    # probing every listed parameter of every type costs ~300 requests a run; Patient's are enough here
    return {**target.options(), "probe_types": "Patient"}


OO = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": "x"}]}


def _bundle(entries: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries or [], **extra}


def _is(path_suffix: str) -> Callable[[Exchange], bool]:
    return lambda ex: ex.path.endswith(path_suffix)


def _on_json(when: Callable[[Exchange], bool], edit: Callable[[Exchange, Any], Any]) -> Callable[[Exchange], None]:
    def after(ex: Exchange) -> None:
        if when(ex) and ex.status == 200 and ex.response_body:
            ex.set_json(edit(ex, ex.json()))

    return after


def _answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Callable[[Exchange], None]:
    def before(ex: Exchange) -> None:
        ex.status = status
        ex.response_body = orjson.dumps(body) if not isinstance(body, bytes) else body
        ex.response_headers = {"content-type": "application/fhir+json", **(headers or {})}

    return before


def _set(ex: Exchange, name: str, value: str) -> None:
    ex.query = [(k, v) for k, v in ex.query if k != name] + [(name, value)]


def _absolute_reference_missed(ex: Exchange) -> None:
    """A server that does not know its own base: an absolute reference to it matches nothing."""
    value = ex.param("subject") or ""
    if value.startswith("http") and "/Patient/" in value:
        _set(ex, "subject", value + "-elsewhere")


def _strip_entries(mode: str | None = None) -> Callable[[Exchange, Any], Any]:
    def edit(ex: Exchange, bundle: Any) -> Any:
        bundle["entry"] = [
            e for e in bundle.get("entry", []) if mode is not None and e.get("search", {}).get("mode") != mode
        ]
        return bundle

    return edit


def _metadata(edit: Callable[[dict[str, Any]], None]) -> Callable[[Exchange], None]:
    def change(ex: Exchange, body: Any) -> Any:
        edit(body)
        return body

    return _on_json(_is("/metadata"), change)


def _patient_search(ex: Exchange) -> bool:
    return ex.path.endswith("/Patient") and ex.method == "GET"


def _ukcore_sample(rtype: str) -> Callable[[Exchange], bool]:
    # the UK Core checks judge the first page of every type fetched with _count=20
    return lambda ex: ex.path.endswith(f"/{rtype}") and ex.query == [("_count", "20")]


def _edit_first(rtype: str, edit: Callable[[dict[str, Any]], None]) -> Callable[[Exchange], None]:
    def change(ex: Exchange, bundle: Any) -> Any:
        if bundle.get("entry"):
            edit(bundle["entry"][0]["resource"])
        return bundle

    return _on_json(_ukcore_sample(rtype), change)


def _first_identifier(resource: dict[str, Any]) -> dict[str, Any]:
    return resource["identifier"][0]  # type: ignore[no-any-return]


def _lenient_self_link_repeats_the_ignored(ex: Exchange, bundle: Any) -> Any:
    for item in bundle.get("link", []):
        if item["relation"] == "self":
            item["url"] += "&conformance-unknown-param=1"
    return bundle


def _day_ge_as_gt(ex: Exchange) -> None:
    # the literal "above, or contains" reading: a period that ends during the day is missed by ge of that day
    value = ex.param("date") or ""
    if ex.path.endswith("/Encounter") and len(value) == 12 and value.startswith("ge"):
        _set(ex, "date", "gt" + value[2:])


def _unsigned_accepted(ex: Exchange) -> None:
    if ex.headers.get("authorization") == "Bearer not-a-token":
        ex.headers["authorization"] = TOKEN_HOLDER["token"]


TOKEN_HOLDER: dict[str, str] = {}

#: check id → the mutation that breaks its rule (and only its rule)
BREAKS: dict[str, Mutation] = {
    "srv.search.reference-absolute": Mutation(
        "absolute references to the base missed", before=_absolute_reference_missed
    ),
    "srv.smart.capability-security": Mutation(
        "SMART not declared", after=_metadata(lambda c: c["rest"][0].pop("security", None))
    ),
    "ig.restricted-hidden": Mutation(
        "a restricted patient's read shows an address",
        after=_on_json(
            lambda ex: ex.method == "GET" and ex.path.rsplit("/", 2)[-2] == "Patient",
            lambda ex, body: (
                {**body, "address": [{"postalCode": "WV1 1AA"}]}
                if any(s.get("code") == "R" for s in (body.get("meta") or {}).get("security") or [])
                else body
            ),
        ),
    ),
    "ig.restricted-not-filterable": Mutation(
        "address filters ignored next to _id",
        before=lambda ex: (
            setattr(ex, "query", [(k, v) for k, v in ex.query if k not in ("address", "address-postalcode")])
            if ex.param("_id") is not None and (ex.param("address") or ex.param("address-postalcode"))
            else None
        ),
    ),
    "srv.capability.statement": Mutation("fhirVersion 3.0.2", after=_metadata(lambda c: c.update(fhirVersion="3.0.2"))),
    "srv.capability.listed-interactions-work": Mutation(
        "read of a listed Condition fails",
        before=lambda ex: _answer(500, OO)(ex) if "/Condition/" in ex.path and ex.method == "GET" else None,
    ),
    "srv.capability.listed-params-accepted": Mutation(
        "address-city refused", before=lambda ex: _answer(400, OO)(ex) if ex.param("address-city") else None
    ),
    "srv.capability.unlisted-refused": Mutation(
        "unlisted Account answered",
        before=lambda ex: _answer(200, _bundle())(ex) if ex.path.endswith("/Account") else None,
    ),
    "srv.read": Mutation(
        "read without versionId",
        after=_on_json(
            lambda ex: "/Patient/" in ex.path and "_history" not in ex.path and "$" not in ex.path,
            lambda ex, body: {**body, "meta": {k: v for k, v in body.get("meta", {}).items() if k != "versionId"}},
        ),
    ),
    "srv.read.unknown-id": Mutation(
        "unknown id answers 400",
        after=lambda ex: (
            setattr(ex, "status", 400) if ex.path.endswith("conformance-no-such-id-0") and ex.method == "GET" else None
        ),
    ),
    "srv.vread": Mutation(
        "vread answers another version",
        after=_on_json(
            lambda ex: "/_history/" in ex.path,
            lambda ex, body: {**body, "meta": {**body.get("meta", {}), "versionId": "77"}},
        ),
    ),
    "srv.history-instance": Mutation(
        "history typed searchset", after=_on_json(_is("/_history"), lambda ex, body: {**body, "type": "searchset"})
    ),
    "srv.search.token": Mutation(
        "identifier without system finds nothing",
        after=_on_json(lambda ex: _patient_search(ex) and "|" not in (ex.param("identifier") or "|"), _strip_entries()),
    ),
    "srv.search.string": Mutation(
        "family matches exactly",
        before=lambda ex: _set(ex, "family:exact", ex.param("family") or "") if ex.param("family") else None,
    ),
    "srv.search.date": Mutation(
        "gt acts as ge",
        before=lambda ex: (
            _set(ex, "birthdate", "ge" + (ex.param("birthdate") or "")[2:])
            if (ex.param("birthdate") or "").startswith("gt")
            else None
        ),
    ),
    "srv.search.date-period": Mutation("ge of a day misses a period ending that day", before=_day_ge_as_gt),
    "srv.search.unknown-param-lenient": Mutation(
        "the self link names the ignored parameter",
        after=_on_json(
            lambda ex: ex.param("conformance-unknown-param") is not None, _lenient_self_link_repeats_the_ignored
        ),
    ),
    "srv.smart.discovery": Mutation(
        "discovery without token_endpoint",
        after=_on_json(
            _is("/.well-known/smart-configuration"),
            lambda ex, b: {k: v for k, v in b.items() if k != "token_endpoint"},
        ),
    ),
    "srv.search.reference": Mutation(
        "bare id reference finds nothing",
        after=_on_json(
            lambda ex: ex.path.endswith("/Observation") and "/" not in (ex.param("subject") or "/"), _strip_entries()
        ),
    ),
    "srv.search.id": Mutation(
        "_id finds nothing", after=_on_json(lambda ex: [k for k, _ in ex.query] == ["_id"], _strip_entries())
    ),
    "srv.search.include": Mutation(
        "_include and _revinclude add nothing",
        after=_on_json(
            lambda ex: "Observation:subject" in (ex.param("_include"), ex.param("_revinclude")),
            _strip_entries(mode="include"),
        ),
    ),
    "srv.search.chain": Mutation(
        "chains find nothing",
        after=_on_json(lambda ex: any(k.startswith("subject:Patient") for k, _ in ex.query), _strip_entries()),
    ),
    "srv.search.sort": Mutation(
        "descending sort ignored",
        before=lambda ex: _set(ex, "_sort", "_lastUpdated") if ex.param("_sort") == "-_lastUpdated" else None,
    ),
    "srv.search.paging": Mutation(
        "no next link with _count=2",
        after=_on_json(
            lambda ex: ex.param("_count") == "2" or ex.param("_page_token") is not None,
            lambda ex, b: {**b, "link": [x for x in b.get("link", []) if x["relation"] != "next"]},
        ),
    ),
    "srv.search.summary-count": Mutation(
        "count off by one",
        after=_on_json(
            lambda ex: (
                ex.param("_summary") == "count" and ex.path.endswith("/Observation") and ex.param("subject") is not None
            ),
            lambda ex, b: {**b, "total": b.get("total", 0) + 1},
        ),
    ),
    "srv.search.total": Mutation(
        "no total for _total=accurate",
        after=_on_json(
            lambda ex: ex.param("_total") == "accurate" and ex.path.endswith("/Observation"),
            lambda ex, b: {k: v for k, v in b.items() if k != "total"},
        ),
    ),
    "srv.search.unknown-param-strict": Mutation(
        "strict ignored",
        before=lambda ex: (
            ex.headers.update(prefer="handling=lenient") if ex.param("conformance-unknown-param") else None
        ),
    ),
    "srv.errors.operation-outcome": Mutation(
        "plain-text 400",
        after=lambda ex: setattr(ex, "response_body", b"bad count") if ex.param("_count") == "not-a-number" else None,
    ),
    "srv.if-none-match": Mutation(
        "If-None-Match ignored", before=lambda ex: ex.headers.pop("if-none-match", None) and None
    ),
    "srv.gzip": Mutation("never gzip", before=lambda ex: ex.headers.update({"accept-encoding": "identity"})),
    "srv.format": Mutation(
        "xml answered as json", before=lambda ex: _set(ex, "_format", "json") if ex.param("_format") == "xml" else None
    ),
    "srv.everything": Mutation(
        "$everything without Observations",
        after=_on_json(
            _is("/$everything"),
            lambda ex, b: {
                **b,
                "entry": [e for e in b.get("entry", []) if e["resource"]["resourceType"] != "Observation"],
            },
        ),
    ),
    "srv.match": Mutation(
        "$match without scores",
        after=_on_json(
            _is("/$match"),
            lambda ex, b: {**b, "entry": [{**e, "search": {"mode": "match"}} for e in b.get("entry", [])]},
        ),
    ),
    "srv.auth.negatives": Mutation("a garbage token accepted", before=_unsigned_accepted),
    "ig.read-only": Mutation(
        "POST accepted",
        before=lambda ex: (
            _answer(201, {"resourceType": "Patient", "id": "x"})(ex)
            if ex.method == "POST" and ex.path.endswith("/Patient")
            else None
        ),
    ),
    "ig.objector-invisible": Mutation(
        "objector counted",
        after=_on_json(
            lambda ex: (
                ex.param("_summary") == "count"
                and ex.path.endswith("/Patient")
                and BROWN not in (ex.param("identifier") or "")
            ),
            lambda ex, b: {**b, "total": 1},
        ),
    ),
    "ukcore.identifier-systems": Mutation(
        "identifier without system", after=_edit_first("Patient", lambda r: r["identifier"][-1].pop("system", None))
    ),
    "ukcore.nhs-number": Mutation(
        "bad check digit", after=_edit_first("Patient", lambda r: _first_identifier(r).update(value="9990000111"))
    ),
    "ukcore.nhs-verification": Mutation(
        "no verification extension", after=_edit_first("Patient", lambda r: _first_identifier(r).pop("extension", None))
    ),
    "ukcore.required-elements": Mutation(
        "Observation without status", after=_edit_first("Observation", lambda r: r.pop("status", None))
    ),
    "ukcore.profile-claims": Mutation(
        "Patient claims Observation profile",
        after=_edit_first(
            "Patient",
            lambda r: r["meta"].update(profile=["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation"]),
        ),
    ),
}

PROXY: list[BreakingProxy] = []


def _auth(ex: Exchange) -> dict[str, str]:
    return {"authorization": ex.headers.get("authorization", "")}


def _not_passed(report: Report) -> set[str]:
    return {r.check.id for r in report.results if r.outcome in (Outcome.FAIL, Outcome.ERROR)}


@pytest.fixture(scope="module")
async def proxy(fhir_target: FhirTarget) -> AsyncIterator[BreakingProxy]:
    TOKEN_HOLDER["token"] = f"Bearer {fhir_target.token}"
    async with breaking_proxy(fhir_target.origin) as running:
        PROXY[:] = [running]
        yield running


@pytest.fixture(scope="module")
async def baseline(proxy: BreakingProxy, fhir_target: FhirTarget) -> set[str]:
    proxy.mutation = None
    return _not_passed(await run_pack("server", f"{proxy.public}/fhir", _options(fhir_target)))


async def test_the_faithful_target_passes_every_check(baseline: set[str]) -> None:
    """Errors and warnings alike: the violations below are measured against a clean pass."""
    assert baseline == set()


def test_every_check_has_a_violation() -> None:
    """No check is left unproven (the table is complete)."""
    ids = {c.id for c in get_pack("server").checks}
    unproven = ids - set(BREAKS) - UNPROVEN_HERE
    assert not unproven, f"checks with no violating target: {sorted(unproven)}"


#: checks whose violation this proxy cannot stage (and why); proven elsewhere
UNPROVEN_HERE: set[str] = set()


@pytest.mark.parametrize("check_id", sorted(BREAKS))
async def test_a_violation_fails_exactly_its_check(
    check_id: str, proxy: BreakingProxy, baseline: set[str], fhir_target: FhirTarget
) -> None:
    """The mutation breaks one rule; the pack reports exactly that check on top of today's findings."""
    assert check_id not in baseline, f"{check_id} already fails against the faithful target"
    proxy.mutation = BREAKS[check_id]
    try:
        report = await run_pack("server", f"{proxy.public}/fhir", _options(fhir_target))
    finally:
        proxy.mutation = None
    assert _not_passed(report) - baseline == {check_id}, console_summary(report)
    assert baseline - _not_passed(report) == set(), console_summary(report)
