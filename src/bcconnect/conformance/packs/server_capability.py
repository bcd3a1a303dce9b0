"""The server pack, part one: capabilities, reads and history, errors and HTTP behaviour, operations, SMART.

Checks find their own test data (a Patient with an NHS number and one of their Observations) and skip with a
reason (``n/a``) when the server does not offer what they need. What each check enforces, its severity and its
specification reference are in the pack's catalogue (``server.toml`` beside this module).
"""

from __future__ import annotations

import base64
import gzip
from typing import Any

import orjson

from bcconnect.conformance._context import Context, require
from bcconnect.conformance._fhir import (
    SOME_R4_TYPES,
    entries,
    is_operation_outcome,
    keys,
    link,
    nhs_numbers,
    query,
)
from bcconnect.conformance._judge import Findings, expect_bundle, expect_outcome, expect_status
from bcconnect.conformance._model import NotApplicable
from bcconnect.conformance.packs._server_common import (
    PACK,
    capability,
    interactions,
    listed_types,
    operations,
    require_type,
    sample,
    sample_observation,
    search_params,
    server_rest,
)
from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM

check = PACK.check
#: a plausible value per search parameter type, to show a listed parameter is accepted
_PLAUSIBLE = {
    "token": "conformance-probe",
    "string": "conformance-probe",
    "date": "ge2000-01-01",
    "reference": "Patient/conformance-probe",
    "number": "1",
    "quantity": "1",
    "uri": "http://example.org/conformance-probe",
    "composite": "conformance-probe$conformance-probe",
    "special": "conformance-probe",
}
#: search parameters that are not filters (checked by their own checks)
_RESULT_PARAMS = frozenset(
    {"_count", "_sort", "_include", "_revinclude", "_summary", "_total", "_elements", "_contained"}
)
_MAX_PARAM_PROBES = 400


# --- CapabilityStatement ---------------------------------------------------------------------------------
@check("srv.capability.statement")
async def capability_statement(ctx: Context) -> str:
    statement = await capability(ctx)
    version = str(statement.get("fhirVersion") or "")
    require(version.startswith("4.0"), f"fhirVersion is {version!r}, not 4.0.x (R4)")
    formats = {str(f).lower() for f in statement.get("format") or []}
    require(formats & {"json", "application/fhir+json"}, f"format {sorted(formats)} does not list JSON")
    require(server_rest(statement), "the CapabilityStatement has no rest entry in server mode")
    require(statement.get("kind") in ("instance", "capability", "requirements"), "kind is missing or invalid")
    return f"FHIR {version}, {len(listed_types(statement))} resource types listed"


@check("srv.capability.listed-interactions-work")
async def listed_interactions(ctx: Context) -> str:
    types = listed_types(await capability(ctx))
    findings = Findings()
    read = 0
    for rtype, entry in sorted(types.items()):
        codes = interactions(entry)
        if "search-type" not in codes:
            continue
        answer = await ctx.get(f"{rtype}?_count=1")
        if answer.status in (401, 403):
            ctx.note(f"{rtype}: HTTP {answer.status} — the credentials given do not allow it; not judged")
            continue
        if answer.status != 200:
            findings.add(f"{rtype} search answered {answer.status}")
            continue
        found = entries(answer.json())
        if "read" in codes and found:
            read_answer = await ctx.get(f"{rtype}/{found[0].get('id')}")
            read += 1
            if read_answer.status != 200:
                findings.add(f"{rtype}/{found[0].get('id')} read answered {read_answer.status}")
    return findings.verdict(
        f"search-type worked on every listed type; read worked on {read} found resources",
        lead="listed interactions fail: ",
    )


@check("srv.capability.listed-params-accepted")
async def listed_params(ctx: Context) -> str:
    types = listed_types(await capability(ctx))
    chosen = {t.strip() for t in (ctx.option("probe_types") or "").split(",") if t.strip()}
    if chosen:
        ctx.note(f"probing only the listed parameters of {', '.join(sorted(chosen))} (probe_types)")
    findings = Findings()
    probes = 0
    for rtype, entry in sorted(types.items()):
        if "search-type" not in interactions(entry) or (chosen and rtype not in chosen):
            continue
        for name, ptype in sorted(search_params(entry).items()):
            if name in _RESULT_PARAMS or ptype not in _PLAUSIBLE or probes >= _MAX_PARAM_PROBES:
                continue
            probes += 1
            answer = await ctx.get(
                f"{rtype}{query([(name, _PLAUSIBLE[ptype]), ('_count', '1')])}", headers={"prefer": "handling=strict"}
            )
            if answer.status in (401, 403):
                ctx.note(f"{rtype}?{name}: HTTP {answer.status} — the credentials given do not allow it; not judged")
            elif answer.status != 200:
                findings.add(f"{rtype}?{name} ({ptype}) → HTTP {answer.status}")
    # the exchanges of passing probes add nothing to a report; keep only those that failed
    ctx.exchanges[:] = [e for e in ctx.exchanges if e.status != 200]
    ctx.note(f"{probes} listed parameters probed with a value of their type")
    return findings.verdict(
        f"all {probes} listed search parameters accepted", lead=f"{len(findings.items)} listed parameters refused: "
    )


@check("srv.capability.unlisted-refused")
async def unlisted_refused(ctx: Context) -> str:
    types = listed_types(await capability(ctx))
    unlisted = [t for t in SOME_R4_TYPES if t not in types][:3]
    if not unlisted:
        raise NotApplicable("the server lists every probe type")
    findings = Findings()
    for rtype in unlisted:
        answer = await ctx.get(f"{rtype}?_count=1")
        if not 400 <= answer.status < 500:
            findings.add(f"{rtype} search → HTTP {answer.status}")
    if "Patient" in types and "validate" not in operations(await capability(ctx), "Patient"):
        answer = await ctx.get("Patient/$validate")
        if not 400 <= answer.status < 500:
            findings.add(f"Patient/$validate (unlisted) → HTTP {answer.status}")
    return findings.verdict(
        f"unlisted types {', '.join(unlisted)} and an unlisted operation were refused with 4xx",
        lead="unlisted capabilities answered as if supported: ",
    )


# --- read, vread, history ----------------------------------------------------------------------------------
@check("srv.read")
async def read(ctx: Context) -> str:
    found = await sample(ctx)
    await require_type(ctx, "Patient", "read")
    answer = await ctx.get(f"Patient/{found.patient_id}")
    expect_status(answer, 200, "read")
    body = answer.json()
    require(
        body.get("resourceType") == "Patient" and body.get("id") == found.patient_id,
        "the resource read is not the one asked for",
    )
    version = (body.get("meta") or {}).get("versionId")
    etag = answer.header("etag")
    require(version, "meta.versionId is missing")
    require(etag in (f'W/"{version}"', f'"{version}"'), f"ETag {etag!r} does not carry versionId {version!r}")
    return f"Patient/{found.patient_id} version {version}, ETag {etag}"


@check("srv.read.unknown-id")
async def read_unknown(ctx: Context) -> str:
    await require_type(ctx, "Patient", "read")
    answer = await ctx.get("Patient/conformance-no-such-id-0")
    expect_outcome(answer, 404, "reading an unknown id")
    return "404 with an OperationOutcome"


@check("srv.vread")
async def vread(ctx: Context) -> str:
    found = await sample(ctx)
    await require_type(ctx, "Patient", "vread")
    version = (found.patient.get("meta") or {}).get("versionId")
    require(version, "the sample Patient has no meta.versionId to vread")
    answer = await ctx.get(f"Patient/{found.patient_id}/_history/{version}")
    expect_status(answer, 200, "vread")
    body = answer.json()
    require((body.get("meta") or {}).get("versionId") == version, "vread answered another version")
    missing = await ctx.get(f"Patient/{found.patient_id}/_history/999999")
    require(missing.status in (404, 410), f"vread of a version that does not exist answered HTTP {missing.status}")
    return f"version {version} read back; a missing version answered {missing.status}"


@check("srv.history-instance")
async def history_instance(ctx: Context) -> str:
    found = await sample(ctx)
    await require_type(ctx, "Patient", "history-instance")
    answer = await ctx.get(f"Patient/{found.patient_id}/_history")
    bundle = expect_bundle(answer, "_history", "history")
    version = (found.patient.get("meta") or {}).get("versionId")
    versions = [(r.get("meta") or {}).get("versionId") for r in entries(bundle, mode=None)]
    require(version in versions, f"the current version {version} is not in the history ({versions})")
    for entry in bundle.get("entry") or []:
        require(entry.get("request", {}).get("method"), "a history entry has no request.method")
    return f"history Bundle with versions {versions}"


# --- errors and HTTP behaviour -----------------------------------------------------------------------------
_BAD_REQUESTS = (
    ("GET", "Patient/conformance-no-such-id-0", None),
    ("GET", "Patient?birthdate=not-a-date", None),
    ("GET", "Patient?_count=not-a-number", None),
    ("GET", "Patient?_sort=conformance-no-such-param", None),
    ("GET", "Patient?_include=Nothing:nowhere", None),
    ("GET", "Conformancenosuchtype", None),
    ("GET", "Patient?_format=text/csv", None),
    ("DELETE", "Patient/conformance-no-such-id-0", None),
)


@check("srv.errors.operation-outcome")
async def errors_outcome(ctx: Context) -> str:
    await require_type(ctx, "Patient")
    findings = Findings()
    for method, path, body in _BAD_REQUESTS:
        answer = await ctx.request(method, path, content=body, headers={"prefer": "handling=strict"})
        if answer.status < 400:
            continue  # a server may legitimately accept some of these; others' checks judge that
        if answer.status >= 500:
            findings.add(f"{method} {path} → HTTP {answer.status} (a server error for a bad request)")
            continue
        ok, why = is_operation_outcome(answer)
        if not ok:
            findings.add(f"{method} {path} → HTTP {answer.status} without an OperationOutcome ({why})")
    return findings.verdict(f"{len(_BAD_REQUESTS)} bad requests: every error was a 4xx with an OperationOutcome")


@check("srv.if-none-match")
async def if_none_match(ctx: Context) -> str:
    found = await sample(ctx)
    entry = await require_type(ctx, "Patient", "read")
    first = await ctx.get(f"Patient/{found.patient_id}")
    etag = first.header("etag")
    require(etag, "the read has no ETag")
    assert etag is not None
    again = await ctx.get(f"Patient/{found.patient_id}", headers={"if-none-match": etag})
    expect_status(again, 304, f"If-None-Match {etag}")
    require(not again.body, "the 304 carries a body")
    declared = entry.get("conditionalRead", "not-supported")
    require(
        declared in ("not-match", "full-support"),
        f"the server honours If-None-Match but its CapabilityStatement says conditionalRead={declared!r}",
    )
    return f"304 for {etag}; conditionalRead={declared}"


@check("srv.gzip")
async def gzip_encoding(ctx: Context) -> str:
    await require_type(ctx, "Observation")
    answer = await ctx.get("Observation?_count=50", headers={"accept-encoding": "gzip"})
    expect_status(answer, 200, "a page of Observations")
    if len(answer.body) < 2048:
        raise NotApplicable("the answer is too small to expect compression")
    require(
        answer.header("content-encoding") == "gzip",
        f"Content-Encoding is {answer.header('content-encoding')!r} for a {len(answer.body)}-byte answer",
    )
    require(gzip.decompress(answer.raw_body) == answer.body, "the gzip body does not decompress to the JSON")
    return f"{len(answer.raw_body)} gzip bytes for {len(answer.body)} bytes of JSON"


@check("srv.format")
async def format_param(ctx: Context) -> str:
    statement = await capability(ctx)
    await require_type(ctx, "Patient")
    for value in ("json", "application/fhir+json"):
        answer = await ctx.get(f"Patient{query([('_count', '1'), ('_format', value)])}")
        require(answer.status == 200, f"_format={value} answered HTTP {answer.status}")
        require(
            "json" in (answer.header("content-type") or ""), f"_format={value} answered {answer.header('content-type')}"
        )
    formats = {str(f).lower() for f in statement.get("format") or []}
    if formats & {"xml", "application/fhir+xml"}:
        answer = await ctx.get("Patient?_count=1&_format=xml")
        require("xml" in (answer.header("content-type") or ""), "XML is listed but _format=xml did not answer XML")
        return "JSON and the listed XML served"
    for how, path, headers in (
        ("_format=xml", "Patient?_count=1&_format=xml", {}),
        ("Accept: application/fhir+xml", "Patient?_count=1", {"accept": "application/fhir+xml"}),
    ):
        answer = await ctx.get(path, headers=headers)
        expect_status(answer, (406, 415), f"{how} (not listed)")
    return "JSON served; XML, which is not listed, refused with 406"


@check("srv.everything")
async def everything(ctx: Context) -> str:
    observation, pid = sample_observation(await sample(ctx))
    if "everything" not in operations(await capability(ctx), "Patient"):
        raise NotApplicable("$everything is not listed")
    url: str | None = f"Patient/{pid}/$everything?_count=1000"
    seen: list[str] = []
    pages = 0
    while url and pages < 50:
        bundle = expect_bundle(await ctx.get(url), "$everything")
        seen += keys(entries(bundle, mode=None))
        url = link(bundle, "next")
        pages += 1
    require(f"Patient/{pid}" in seen, "the Patient is not in its own $everything")
    require(f"Observation/{observation['id']}" in seen, f"Observation/{observation['id']} is not in $everything")
    return f"{len(seen)} resources in {pages} page(s), the Patient and the sample Observation among them"


@check("srv.match")
async def match(ctx: Context) -> str:
    found = await sample(ctx)
    if "match" not in operations(await capability(ctx), "Patient"):
        raise NotApplicable("$match is not listed")
    if found.nhs_number is None:
        raise NotApplicable("the sample Patient has no NHS number")
    probe = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": found.nhs_number}],
        "name": found.patient.get("name", [])[:1],
        "birthDate": found.patient.get("birthDate"),
        "gender": found.patient.get("gender"),
    }
    parameters = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": probe}]}
    answer = await ctx.request(
        "POST", "Patient/$match", content=orjson.dumps(parameters), headers={"content-type": "application/fhir+json"}
    )
    bundle = expect_bundle(answer, "$match")
    # a server that keeps one Patient per person may answer with that Patient: any Patient with the number is right
    matched = [
        e
        for e in bundle.get("entry") or []
        if any(i.get("value") == found.nhs_number for i in nhs_numbers(e.get("resource") or {}))
    ]
    require(matched, f"$match found no Patient with NHS number {found.nhs_number}")
    score = (matched[0].get("search") or {}).get("score")
    require(isinstance(score, int | float) and 0 <= score <= 1, f"the match has no score between 0 and 1 ({score!r})")
    return f"Patient/{matched[0]['resource'].get('id')} matched NHS number {found.nhs_number} with score {score}"


# --- SMART and auth negatives -----------------------------------------------------------------------------
@check("srv.smart.discovery")
async def smart_discovery(ctx: Context) -> str:
    if not _declares_smart(await capability(ctx)):
        raise NotApplicable("the CapabilityStatement does not declare SMART-on-FHIR security")
    answer = await ctx.get(".well-known/smart-configuration", auth=False, headers={"accept": "application/json"})
    expect_status(answer, 200, "/.well-known/smart-configuration")
    body = answer.maybe_json()
    require(isinstance(body, dict), "the SMART configuration is not a JSON object")
    missing = [
        f
        for f in ("token_endpoint", "capabilities", "grant_types_supported", "code_challenge_methods_supported")
        if f not in body
    ]
    require(not missing, f"the SMART configuration lacks {', '.join(missing)}")
    require(
        "S256" in body["code_challenge_methods_supported"] or "client_credentials" in body["grant_types_supported"],
        "neither PKCE S256 nor client_credentials is offered",
    )
    return f"token endpoint {body['token_endpoint']}; capabilities {', '.join(map(str, body['capabilities']))}"


def _declares_smart(statement: dict[str, Any]) -> bool:
    security = server_rest(statement).get("security") or {}
    return "SMART-on-FHIR" in {c.get("code") for s in security.get("service") or [] for c in s.get("coding") or []}


@check("srv.smart.capability-security")
async def smart_capability(ctx: Context) -> str:
    security = server_rest(await capability(ctx)).get("security") or {}
    codes = {c.get("code") for s in security.get("service") or [] for c in s.get("coding") or []}
    require(
        "SMART-on-FHIR" in codes, f"rest.security.service does not list SMART-on-FHIR ({sorted(filter(None, codes))})"
    )
    return "SMART-on-FHIR declared"


def _unsigned_token() -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    claims = (
        base64.urlsafe_b64encode(b'{"sub":"conformance","scope":"user/*.read","exp":4102444800}').rstrip(b"=").decode()
    )
    return f"{header}.{claims}."


@check("srv.auth.negatives")
async def auth_negatives(ctx: Context) -> str:
    await require_type(ctx, "Patient")
    if not ctx.option("token"):
        raise NotApplicable("no --token given: the target is being tested as an open server")
    findings = Findings()
    for why, headers in (
        ("no token", {}),
        ("a garbage token", {"authorization": "Bearer not-a-token"}),
        ("an unsigned (alg none) token", {"authorization": f"Bearer {_unsigned_token()}"}),
    ):
        answer = await ctx.get("Patient?_count=1", auth=False, headers=headers)
        if answer.status != 401:
            findings.add(f"{why} → HTTP {answer.status}")
            continue
        if not (answer.header("www-authenticate") or "").lower().startswith("bearer"):
            findings.add(f"{why} → 401 without WWW-Authenticate: Bearer")
        ok, detail = is_operation_outcome(answer)
        if not ok:
            findings.add(f"{why} → 401 without an OperationOutcome ({detail})")
    return findings.verdict("all three refused with 401, WWW-Authenticate: Bearer and an OperationOutcome")
