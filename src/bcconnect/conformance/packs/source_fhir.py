"""The FHIR source pack: what a trust's FHIR R4 API must do before an adapter is pointed at it.

Target: the FHIR base (``https://trust.example/fhir/R4``). Options: ``client_id`` and ``client_secret``
(OAuth2 client credentials), ``token_url`` (else discovered from SMART configuration or the
CapabilityStatement), ``types`` (comma-separated; default: every type the CapabilityStatement offers for
search), ``max_pages`` (bound on paging walks, default 40).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

from bcconnect.conformance._catalogue_file import load_catalogue
from bcconnect.conformance._context import Context, require
from bcconnect.conformance._fhir import (
    entries,
    identifier_problems,
    is_operation_outcome,
    keys,
    link,
    nhs_number_problems,
    profile_problems,
    query,
    required_element_problems,
    verification_problems,
)
from bcconnect.conformance._model import NotApplicable, Pack

PACK = Pack(load_catalogue("source-fhir"))
check = PACK.check
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
DEFAULT_MAX_PAGES = 40
PAGE_SIZE = 50
SMALL_PAGE = 4
#: how many requests the rate-limit probe sends back to back (bounded: it stops at the first 429)
RATE_PROBE_REQUESTS = 150


async def _capability(ctx: Context) -> dict[str, Any]:
    answer = await ctx.get("metadata", auth=False)
    require(answer.status == 200, f"GET metadata answered HTTP {answer.status}")
    body = answer.json()
    require(body.get("resourceType") == "CapabilityStatement", "GET metadata did not answer a CapabilityStatement")
    return body  # type: ignore[no-any-return]


async def capability(ctx: Context) -> dict[str, Any]:
    """The source's CapabilityStatement (once per run)."""
    return await ctx.shared("capability", _capability)


async def offered_types(ctx: Context) -> list[str]:
    """The types under test: ``--types`` or every type offered for search."""
    chosen = ctx.option("types")
    if chosen:
        return [t.strip() for t in chosen.split(",") if t.strip()]
    statement = await capability(ctx)
    found = []
    for rest in statement.get("rest") or []:
        for entry in rest.get("resource") or []:
            if any(i.get("code") == "search-type" for i in entry.get("interaction") or []):
                found.append(str(entry.get("type")))
    if not found:
        raise NotApplicable("the CapabilityStatement offers no type for search")
    return sorted(found)


async def _token_url(ctx: Context) -> str:
    given = ctx.option("token_url")
    if given:
        return given
    answer = await ctx.get(".well-known/smart-configuration", auth=False, headers={"accept": "application/json"})
    body = answer.maybe_json() if answer.status == 200 else None
    if isinstance(body, dict) and body.get("token_endpoint"):
        return str(body["token_endpoint"])
    for rest in (await capability(ctx)).get("rest") or []:
        for ext in (rest.get("security") or {}).get("extension") or []:
            if ext.get("url") == OAUTH_URIS:
                for inner in ext.get("extension") or []:
                    if inner.get("url") == "token":
                        return str(inner.get("valueUri"))
    raise NotApplicable("no token endpoint: give --token-url (none in SMART configuration or the CapabilityStatement)")


async def _token(ctx: Context) -> str:
    client_id, secret = ctx.option("client_id"), ctx.option("client_secret")
    if not client_id or not secret:
        raise NotApplicable("no --client-id/--client-secret given")
    url = await _token_url(ctx)
    answer = await ctx.request(
        "POST",
        url,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        headers={"accept": "application/json"},
        auth=False,
    )
    require(answer.status == 200, f"the token endpoint answered HTTP {answer.status} to valid client credentials")
    body = answer.json()
    require(isinstance(body, dict) and body.get("access_token"), "the token answer has no access_token")
    return str(body["access_token"])


async def token(ctx: Context) -> str:
    """An access token obtained once per run (set as the run's bearer token)."""
    value = await ctx.shared("token", _token)
    ctx.session.options = {**ctx.session.options, "token": value}
    return value


@dataclass(frozen=True, slots=True)
class Walk:
    """A paging walk: the resources, pages fetched, whether the last page was reached, and paging problems."""

    resources: list[dict[str, Any]]
    pages: int
    ended: bool
    problems: list[str]


async def _walk(ctx: Context, resource_type: str, count: int = PAGE_SIZE, limit: int | None = None) -> Walk:
    await token(ctx)
    limit = limit or int(ctx.option("max_pages") or DEFAULT_MAX_PAGES)
    url: str | None = f"{resource_type}{query([('_sort', '_lastUpdated'), ('_count', str(count))])}"
    found: list[dict[str, Any]] = []
    problems: list[str] = []
    pages = 0
    while url and pages < limit:
        answer = await ctx.get(url)
        require(answer.status == 200, f"page {pages + 1} of {resource_type} answered HTTP {answer.status}")
        bundle = answer.json()
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "searchset":
            problems.append(f"page {pages + 1} is not a searchset Bundle")
        found += entries(bundle)
        pages += 1
        url = link(bundle, "next")
        if url is not None and not url.startswith(("http://", "https://")):
            # the other checks go on with the resolved link; only the paging check judges it
            problems.append(f"page {pages}'s next link {url!r} is not an absolute URL")
            url = urljoin(ctx.url(resource_type), url)
    return Walk(found, pages, url is None, problems)


async def walked(ctx: Context, resource_type: str) -> Walk:
    """Every resource of a type by next links (bounded by ``max_pages``), walked once per run."""
    result = await ctx.shared(f"walk:{resource_type}", lambda c: _walk(c, resource_type))
    # the walk's page requests would swamp the report; keep the first and last two as the evidence
    if len(ctx.exchanges) > 6:
        ctx.exchanges[2:-2] = []
    ctx.note(f"{resource_type}: {len(result.resources)} resources over {result.pages} pages (end: {result.ended})")
    return result


@check("src-fhir.capability")
async def source_capability(ctx: Context) -> str:
    statement = await capability(ctx)
    require(
        str(statement.get("fhirVersion", "")).startswith("4.0"),
        f"fhirVersion {statement.get('fhirVersion')!r} is not R4",
    )
    types = await offered_types(ctx)
    require("Patient" in types, "Patient is not offered for search (every adapter starts from Patients)")
    return f"R4, {len(types)} types offered: {', '.join(types)}"


@check("src-fhir.oauth")
async def oauth(ctx: Context) -> str:
    await token(ctx)
    url = await _token_url(ctx)
    wrong = await ctx.request(
        "POST",
        url,
        data={
            "grant_type": "client_credentials",
            "client_id": ctx.option("client_id") or "",
            "client_secret": "conformance-wrong-secret",
        },
        headers={"accept": "application/json"},
        auth=False,
    )
    require(
        wrong.status in (400, 401),
        f"a wrong client secret answered HTTP {wrong.status}, expected 401 (or 400 invalid_client)",
    )
    return f"token issued at {url}; a wrong secret refused with {wrong.status}"


@check("src-fhir.auth-required")
async def auth_required(ctx: Context) -> str:
    await token(ctx)
    problems = []
    for why, headers in (("no token", {}), ("an unknown token", {"authorization": "Bearer conformance-not-a-token"})):
        answer = await ctx.get("Patient?_count=1", auth=False, headers=headers)
        if answer.status != 401:
            problems.append(f"{why} → HTTP {answer.status}")
        elif not is_operation_outcome(answer)[0]:
            problems.append(f"{why} → 401 without an OperationOutcome")
    require(not problems, "; ".join(problems))
    return "refused with 401 and an OperationOutcome"


@check("src-fhir.paging")
async def paging(ctx: Context) -> str:
    summary, problems = [], []
    for rtype in (await offered_types(ctx))[:6]:
        walk = await walked(ctx, rtype)
        problems += [f"{rtype}: {p}" for p in walk.problems]
        summary.append(f"{rtype} {len(walk.resources)} in {walk.pages} pages{'' if walk.ended else ' (bounded)'}")
    # small pages make even a small source page: the same resources, each once, by next links
    whole = await walked(ctx, "Patient")
    if whole.ended:
        small = await _walk(ctx, "Patient", count=SMALL_PAGE, limit=len(whole.resources) // SMALL_PAGE + 5)
        problems += [f"Patient with _count={SMALL_PAGE}: {p}" for p in small.problems]
        ids = keys(small.resources)
        require(
            len(ids) == len(set(ids)), f"_count={SMALL_PAGE} paging returned {len(ids) - len(set(ids))} resources twice"
        )
        require(
            sorted(ids) == sorted(keys(whole.resources)),
            f"_count={SMALL_PAGE} paging found {len(ids)} Patients, _count={PAGE_SIZE} found {len(whole.resources)}",
        )
        summary.append(f"Patient again in {small.pages} pages of {SMALL_PAGE}, the same {len(ids)}")
        if len(ctx.exchanges) > 12:
            ctx.exchanges[6:-3] = []
    require(not problems, "; ".join(problems[:10]))
    return "; ".join(summary)


@check("src-fhir.versions")
async def versions(ctx: Context) -> str:
    found = (await walked(ctx, "Patient")).resources
    bad = [
        f"{r.get('resourceType')}/{r.get('id')}"
        for r in found
        if not (r.get("meta") or {}).get("versionId") or "T" not in str((r.get("meta") or {}).get("lastUpdated") or "")
    ]
    require(not bad, f"{len(bad)} resources lack meta.versionId or an instant lastUpdated: {bad[:10]}")
    return f"{len(found)} Patients carry versionId and lastUpdated"


@check("src-fhir.lastupdated")
async def last_updated(ctx: Context) -> str:
    walk = await walked(ctx, "Patient")
    found, ended = walk.resources, walk.ended
    if len(found) < 4:
        raise NotApplicable("fewer than four Patients to test _lastUpdated with")
    stamps = sorted(str((r.get("meta") or {}).get("lastUpdated")) for r in found)
    pivot = stamps[len(stamps) // 2]
    later = [s for s in stamps if s > pivot]
    for prefix, wanted in (("gt", later), ("ge", [s for s in stamps if s >= pivot])):
        answer = await ctx.get(
            "Patient"
            + query([("_lastUpdated", f"{prefix}{pivot}"), ("_sort", "_lastUpdated"), ("_count", str(PAGE_SIZE))])
        )
        require(answer.status == 200, f"_lastUpdated={prefix}{pivot} answered HTTP {answer.status}")
        got = [str((r.get("meta") or {}).get("lastUpdated")) for r in entries(answer.json())]
        wrong = [s for s in got if not (s > pivot if prefix == "gt" else s >= pivot)]
        require(not wrong, f"_lastUpdated={prefix}{pivot} returned resources updated at {wrong[:3]}")
        if ended:
            require(
                got[: len(wanted)] == wanted[: len(got)],
                f"_lastUpdated={prefix}{pivot} skipped changes: expected to start {wanted[:3]}, got {got[:3]}",
            )
    return f"gt/ge {pivot} returned only later changes, in order"


@check("src-fhir.history-deletes")
async def history_deletes(ctx: Context) -> str:
    await token(ctx)
    limit = int(ctx.option("max_pages") or DEFAULT_MAX_PAGES)
    total, deletes, read_back = 0, 0, 0
    for rtype in (await offered_types(ctx))[:6]:
        url: str | None = f"{rtype}/_history{query([('_count', str(PAGE_SIZE))])}"
        pages = 0
        while url and pages < limit:
            answer = await ctx.get(url)
            require(answer.status == 200, f"{rtype}/_history answered HTTP {answer.status}")
            bundle = answer.json()
            require(
                bundle.get("type") == "history", f"{rtype}/_history is a {bundle.get('type')!r} Bundle, not history"
            )
            for entry in bundle.get("entry") or []:
                total += 1
                method = (entry.get("request") or {}).get("method")
                require(method in ("POST", "PUT", "DELETE", "PATCH"), f"a history entry has request.method {method!r}")
                if method != "DELETE":
                    continue
                deletes += 1
                require("resource" not in entry, "a DELETE history entry carries a resource")
                target = str((entry.get("request") or {}).get("url") or "")
                require(target.startswith(f"{rtype}/"), f"a DELETE entry's request.url is {target!r}, not {rtype}/id")
                if read_back < 3:
                    read_back += 1
                    gone = await ctx.get(target)
                    require(
                        gone.status in (404, 410),
                        f"the deleted {target} reads HTTP {gone.status}, expected 410 (or 404)",
                    )
            url = link(bundle, "next")
            pages += 1
    if len(ctx.exchanges) > 10:
        ctx.exchanges[3:-6] = []
    ctx.note(f"{total} history entries, {deletes} deletes, {read_back} deleted resources read back")
    return f"{total} history entries well formed; {deletes} deletes reported" + ("" if deletes else " (none yet)")


@check("src-fhir.stable-ids")
async def stable_ids(ctx: Context) -> str:
    walk = await walked(ctx, "Patient")
    found, ended = walk.resources, walk.ended
    if not found:
        raise NotApplicable("no Patients")
    for resource in found[:5]:
        answer = await ctx.get(f"Patient/{resource.get('id')}")
        require(answer.status == 200, f"Patient/{resource.get('id')} (found by search) reads HTTP {answer.status}")
        require(
            answer.json().get("id") == resource.get("id"), f"reading Patient/{resource.get('id')} answered another id"
        )
    again = await ctx.get(f"Patient{query([('_sort', '_lastUpdated'), ('_count', str(PAGE_SIZE))])}")
    require(again.status == 200, f"a second search answered HTTP {again.status}")
    first_page = keys(entries(again.json()))
    before = set(keys(found))
    moved = [k for k in first_page if k not in before]
    require(not moved or not ended, f"a second search found ids the first walk did not: {moved[:5]}")
    return "reads agree with search; a second search returns the same ids"


@check("src-fhir.rate-limit")
async def rate_limit(ctx: Context) -> str:
    await token(ctx)
    saved_rate, ctx.session.rate = ctx.session.rate, 0.0  # the probe must be fast enough to meet the limit
    try:
        n = 0
        for _ in range(RATE_PROBE_REQUESTS):
            n += 1
            answer = await ctx.get("Patient?_count=1", retry_429=False)
            if answer.status == 429:
                break
        else:
            ctx.exchanges[:] = ctx.exchanges[:2]
            raise NotApplicable(f"no 429 in {RATE_PROBE_REQUESTS} back-to-back requests: no throttling to judge")
    finally:
        ctx.session.rate = saved_rate
    ctx.exchanges[:] = ctx.exchanges[-2:]
    value = answer.header("retry-after")
    require(value, f"the 429 (after {n} requests) has no Retry-After")
    assert value is not None
    if not value.strip().isdigit():
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        require(
            when is not None and when.tzinfo is not None, f"Retry-After {value!r} is neither seconds nor an HTTP date"
        )
        ctx.note(f"Retry-After is an HTTP date, {when and (when - datetime.now(UTC)).total_seconds():.0f} s ahead")
    require(is_operation_outcome(answer)[0], "the 429 carries no OperationOutcome")
    return f"429 after {n} requests with Retry-After {value!r}"


async def _ukcore_sample(ctx: Context) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for rtype in await offered_types(ctx):
        answer = await ctx.get(f"{rtype}{query([('_count', '20')])}")
        if answer.status == 200:
            found += entries(answer.json())
    return found


async def ukcore_sample(ctx: Context) -> list[dict[str, Any]]:
    """Up to 20 resources of every offered type (once per run)."""
    await token(ctx)
    found = await ctx.shared("ukcore-sample", _ukcore_sample)
    if not found:
        raise NotApplicable("the source returned no resources")
    types = sorted({str(r.get("resourceType")) for r in found})
    ctx.note(f"judged {len(found)} resources of {', '.join(types)}")
    return found


def _judge(resources: list[dict[str, Any]], problems_of: Any) -> str:
    problems = [p for r in resources for p in problems_of(r)]
    require(not problems, f"{len(problems)} problem(s): " + "; ".join(problems[:15]))
    return f"{len(resources)} resources conform"


@check("src-fhir.ukcore.identifiers")
async def src_identifiers(ctx: Context) -> str:
    return _judge(await ukcore_sample(ctx), identifier_problems)


@check("src-fhir.ukcore.nhs-number")
async def src_nhs(ctx: Context) -> str:
    return _judge(await ukcore_sample(ctx), nhs_number_problems)


@check("src-fhir.ukcore.nhs-verification")
async def src_verification(ctx: Context) -> str:
    return _judge(await ukcore_sample(ctx), lambda r: verification_problems(r, allow_retired=True))


@check("src-fhir.ukcore.verification-current-codes")
async def src_current_codes(ctx: Context) -> str:
    return _judge(await ukcore_sample(ctx), lambda r: verification_problems(r, require_present=False))


@check("src-fhir.ukcore.required-elements")
async def src_required(ctx: Context) -> str:
    return _judge(await ukcore_sample(ctx), required_element_problems)


@check("src-fhir.ukcore.profile-claims")
async def src_profiles(ctx: Context) -> str:
    return _judge(await ukcore_sample(ctx), profile_problems)
