"""The server pack: FHIR R4 REST behaviour of any read-only FHIR server, judged over HTTP.

Checks find their own test data (a Patient with an NHS number and one of their Observations) and skip with a
reason (``n/a``) when the server does not offer what they need. Severity ``error`` is a SHALL of the
specification (or of the shared care record profile); ``warning`` a SHOULD.
"""

from __future__ import annotations

import base64
import gzip
from urllib.parse import parse_qsl, urlsplit

import orjson

from bcconnect.conformance._context import Context, require
from bcconnect.conformance._fhir import (
    R4,
    SOME_R4_TYPES,
    entries,
    is_operation_outcome,
    keys,
    link,
    nhs_numbers,
    query,
    search,
)
from bcconnect.conformance._model import NotApplicable, Pack, Severity
from bcconnect.conformance.packs._server_common import (
    capability,
    interactions,
    listed_types,
    operations,
    require_param,
    require_type,
    sample,
    sample_observation,
    search_params,
    server_rest,
)
from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM

PACK = Pack(
    "server",
    "FHIR R4 server",
    "A read-only FHIR R4 server (ours or anyone's): capabilities, reads, search semantics, errors, "
    "HTTP behaviour, operations, SMART discovery and auth negatives; with the shared care record profile "
    "(--objector, --restricted) and UK Core conformance of what it returns.",
)
check = PACK.check

HTTP = f"{R4}/http.html"
SEARCH = f"{R4}/search.html"
SMART = "https://hl7.org/fhir/smart-app-launch/STU2"
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
@check(
    "srv.capability.statement",
    "GET [base]/metadata answers a FHIR R4 CapabilityStatement without credentials",
    spec=f"{R4}/http.html#capabilities",
    section="3.1.0.15 capabilities; SMART App Launch 2.0 (capabilities readable before authorisation)",
)
async def capability_statement(ctx: Context) -> str:
    statement = await capability(ctx)
    version = str(statement.get("fhirVersion") or "")
    require(version.startswith("4.0"), f"fhirVersion is {version!r}, not 4.0.x (R4)")
    formats = {str(f).lower() for f in statement.get("format") or []}
    require(formats & {"json", "application/fhir+json"}, f"format {sorted(formats)} does not list JSON")
    require(server_rest(statement), "the CapabilityStatement has no rest entry in server mode")
    require(statement.get("kind") in ("instance", "capability", "requirements"), "kind is missing or invalid")
    return f"FHIR {version}, {len(listed_types(statement))} resource types listed"


@check(
    "srv.capability.listed-interactions-work",
    "Every listed search-type and read interaction works",
    spec=f"{R4}/capabilitystatement-definitions.html#CapabilityStatement.rest.resource.interaction",
    section="CapabilityStatement.rest.resource.interaction (what is listed is supported)",
)
async def listed_interactions(ctx: Context) -> str:
    types = listed_types(await capability(ctx))
    broken: list[str] = []
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
            broken.append(f"{rtype} search answered {answer.status}")
            continue
        found = entries(answer.json())
        if "read" in codes and found:
            read_answer = await ctx.get(f"{rtype}/{found[0].get('id')}")
            read += 1
            if read_answer.status != 200:
                broken.append(f"{rtype}/{found[0].get('id')} read answered {read_answer.status}")
    require(not broken, "listed interactions fail: " + "; ".join(broken))
    return f"search-type worked on every listed type; read worked on {read} found resources"


@check(
    "srv.capability.listed-params-accepted",
    "Every listed search parameter is accepted (a well-typed value is not refused)",
    spec=f"{R4}/capabilitystatement-definitions.html#CapabilityStatement.rest.resource.searchParam",
    section="CapabilityStatement.rest.resource.searchParam; search.html 3.1.1.4 (handling of parameters)",
)
async def listed_params(ctx: Context) -> str:
    types = listed_types(await capability(ctx))
    chosen = {t.strip() for t in (ctx.option("probe_types") or "").split(",") if t.strip()}
    if chosen:
        ctx.note(f"probing only the listed parameters of {', '.join(sorted(chosen))} (probe_types)")
    refused: list[str] = []
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
                refused.append(f"{rtype}?{name} ({ptype}) → HTTP {answer.status}")
    # the exchanges of passing probes add nothing to a report; keep only those that failed
    ctx.exchanges[:] = [e for e in ctx.exchanges if e.status != 200]
    ctx.note(f"{probes} listed parameters probed with a value of their type")
    require(not refused, f"{len(refused)} listed parameters refused: " + "; ".join(refused[:20]))
    return f"all {probes} listed search parameters accepted"


@check(
    "srv.capability.unlisted-refused",
    "Types and operations the CapabilityStatement does not list are refused with 4xx",
    spec=f"{R4}/http.html#3.1.0.4",
    section="3.1.0.4 (unsupported type → 404 / 400 with OperationOutcome); 3.1.0.15 capabilities",
)
async def unlisted_refused(ctx: Context) -> str:
    types = listed_types(await capability(ctx))
    unlisted = [t for t in SOME_R4_TYPES if t not in types][:3]
    if not unlisted:
        raise NotApplicable("the server lists every probe type")
    accepted = []
    for rtype in unlisted:
        answer = await ctx.get(f"{rtype}?_count=1")
        if not 400 <= answer.status < 500:
            accepted.append(f"{rtype} search → HTTP {answer.status}")
    if "Patient" in types and "validate" not in operations(await capability(ctx), "Patient"):
        answer = await ctx.get("Patient/$validate")
        if not 400 <= answer.status < 500:
            accepted.append(f"Patient/$validate (unlisted) → HTTP {answer.status}")
    require(not accepted, "unlisted capabilities answered as if supported: " + "; ".join(accepted))
    return f"unlisted types {', '.join(unlisted)} and an unlisted operation were refused with 4xx"


# --- read, vread, history ----------------------------------------------------------------------------------
@check(
    "srv.read",
    "Read returns the resource with id, meta.versionId and a matching ETag",
    spec=f"{HTTP}#read",
    section="3.1.0.1 read; 3.1.0.5 versioning (ETag)",
)
async def read(ctx: Context) -> str:
    found = await sample(ctx)
    await require_type(ctx, "Patient", "read")
    answer = await ctx.get(f"Patient/{found.patient_id}")
    require(answer.status == 200, f"read answered HTTP {answer.status}")
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


@check(
    "srv.read.unknown-id",
    "Reading an unknown id answers 404 with an OperationOutcome",
    spec=f"{HTTP}#read",
    section="3.1.0.1 read (404 Not Found for an unknown resource)",
)
async def read_unknown(ctx: Context) -> str:
    await require_type(ctx, "Patient", "read")
    answer = await ctx.get("Patient/conformance-no-such-id-0")
    require(answer.status == 404, f"HTTP {answer.status}, expected 404")
    ok, why = is_operation_outcome(answer)
    require(ok, f"the 404 carries no OperationOutcome: {why}")
    return "404 with an OperationOutcome"


@check(
    "srv.vread",
    "vread returns the version named, with the same versionId",
    spec=f"{HTTP}#vread",
    section="3.1.0.2 vread",
)
async def vread(ctx: Context) -> str:
    found = await sample(ctx)
    await require_type(ctx, "Patient", "vread")
    version = (found.patient.get("meta") or {}).get("versionId")
    require(version, "the sample Patient has no meta.versionId to vread")
    answer = await ctx.get(f"Patient/{found.patient_id}/_history/{version}")
    require(answer.status == 200, f"vread answered HTTP {answer.status}")
    body = answer.json()
    require((body.get("meta") or {}).get("versionId") == version, "vread answered another version")
    missing = await ctx.get(f"Patient/{found.patient_id}/_history/999999")
    require(missing.status in (404, 410), f"vread of a version that does not exist answered HTTP {missing.status}")
    return f"version {version} read back; a missing version answered {missing.status}"


@check(
    "srv.history-instance",
    "_history of a resource is a history Bundle holding its current version",
    spec=f"{HTTP}#history",
    section="3.1.0.13 history",
)
async def history_instance(ctx: Context) -> str:
    found = await sample(ctx)
    await require_type(ctx, "Patient", "history-instance")
    answer = await ctx.get(f"Patient/{found.patient_id}/_history")
    require(answer.status == 200, f"_history answered HTTP {answer.status}")
    bundle = answer.json()
    require(
        bundle.get("resourceType") == "Bundle" and bundle.get("type") == "history",
        f"not a history Bundle (type {bundle.get('type')!r})",
    )
    version = (found.patient.get("meta") or {}).get("versionId")
    versions = [(r.get("meta") or {}).get("versionId") for r in entries(bundle, mode=None)]
    require(version in versions, f"the current version {version} is not in the history ({versions})")
    for entry in bundle.get("entry") or []:
        require(entry.get("request", {}).get("method"), "a history entry has no request.method")
    return f"history Bundle with versions {versions}"


# --- search by parameter type ------------------------------------------------------------------------------
@check(
    "srv.search.token",
    "Token search: system|code, code, and system| forms all find the Patient",
    spec=f"{SEARCH}#token",
    section="3.1.1.5.5 token",
)
async def search_token(ctx: Context) -> str:
    found = await sample(ctx)
    await require_param(ctx, "Patient", "identifier")
    if found.nhs_number is None:
        raise NotApplicable("the sample Patient has no NHS number")
    forms = {
        "system|code": f"{NHS_NUMBER_SYSTEM}|{found.nhs_number}",
        "code": found.nhs_number,
        "system|": f"{NHS_NUMBER_SYSTEM}|",
    }
    for form, value in forms.items():
        params = (
            [("identifier", value), ("_count", "1000")]
            if form != "system|"
            else [("identifier", value), ("_id", found.patient_id)]
        )
        ids = keys(entries(await search(ctx, "Patient", params)))
        require(
            f"Patient/{found.patient_id}" in ids, f"identifier={value} ({form}) did not find Patient/{found.patient_id}"
        )
    other = keys(
        entries(await search(ctx, "Patient", [("identifier", f"http://example.org/other-system|{found.nhs_number}")]))
    )
    require(f"Patient/{found.patient_id}" not in other, "a search under another identifier system found the Patient")
    return "all three token forms matched; another system did not"


@check(
    "srv.search.string",
    "String search matches by case-insensitive prefix; :exact matches exactly",
    spec=f"{SEARCH}#string",
    section="3.1.1.5.4 string (prefix, case and accent insensitive; :exact)",
)
async def search_string(ctx: Context) -> str:
    found = await sample(ctx)
    await require_param(ctx, "Patient", "family")
    family = found.family
    if not family or len(family) < 3:
        raise NotApplicable("the sample Patient's family name is too short")
    target = f"Patient/{found.patient_id}"
    prefix = family[:3].swapcase()
    for value, wanted, why in (
        (prefix, True, "a case-swapped prefix"),
        (family, True, "the whole name"),
    ):
        ids = keys(entries(await search(ctx, "Patient", [("family", value), ("_id", found.patient_id)])))
        require((target in ids) == wanted, f"family={value!r} ({why}) {'did not find' if wanted else 'found'} {target}")
    exact = keys(entries(await search(ctx, "Patient", [("family:exact", family), ("_id", found.patient_id)])))
    require(target in exact, f"family:exact={family!r} did not find {target}")
    if family.swapcase() != family:
        wrong_case = keys(
            entries(await search(ctx, "Patient", [("family:exact", family.swapcase()), ("_id", found.patient_id)]))
        )
        require(target not in wrong_case, f"family:exact={family.swapcase()!r} (other case) found {target}")
    partial = keys(entries(await search(ctx, "Patient", [("family:exact", family[:-1]), ("_id", found.patient_id)])))
    require(target not in partial, f"family:exact={family[:-1]!r} (a prefix) found {target}")
    return f"prefix {prefix!r} matched, :exact matched only {family!r}"


@check(
    "srv.search.date",
    "Date search: prefixes compare as ranges (a birth date, a precision, gt/lt/ge/le)",
    spec=f"{SEARCH}#date",
    section="3.1.1.5.2 date (prefixes, implicit ranges)",
)
async def search_date(ctx: Context) -> str:
    found = await sample(ctx)
    await require_param(ctx, "Patient", "birthdate")
    born = str(found.patient.get("birthDate"))
    target = f"Patient/{found.patient_id}"
    year = born[:4]
    cases = [
        (born, True),
        (year, True),  # a year is the range of the whole year
        (f"ge{born}", True),
        (f"le{born}", True),
        (f"gt{born}", False),
        (f"lt{born}", False),
        (f"eq{int(year) + 1}", False),
        (f"ne{born}", False),
    ]
    wrong = []
    for value, wanted in cases:
        ids = keys(entries(await search(ctx, "Patient", [("birthdate", value), ("_id", found.patient_id)])))
        if (target in ids) != wanted:
            wrong.append(f"birthdate={value} {'missed' if wanted else 'matched'} a Patient born {born}")
    require(not wrong, "; ".join(wrong))
    return f"{len(cases)} date comparisons against {born} behaved as ranges"


@check(
    "srv.search.date-period",
    "Date search over a Period matches by overlap (Encounter.period)",
    spec=f"{SEARCH}#date",
    section="3.1.1.5.2 date (search against a Period)",
)
async def search_date_period(ctx: Context) -> str:
    await require_param(ctx, "Encounter", "date")
    bundle = await search(ctx, "Encounter", [("_count", "50")])
    with_period = [
        e
        for e in entries(bundle)
        if (e.get("period") or {}).get("start")
        and (e.get("period") or {}).get("end")
        and e["period"]["start"][:10] < e["period"]["end"][:10]
    ]
    if not with_period:
        raise NotApplicable("no Encounter with a period spanning days was found")
    encounter = with_period[0]
    start, end = encounter["period"]["start"][:10], encounter["period"]["end"][:10]
    target = f"Encounter/{encounter['id']}"
    cases = [
        (f"ge{start}", True),
        (f"le{end}", True),
        (f"le{start}", True),
        (f"ge{end}", True),
        (f"lt{start}", False),
        (f"gt{end}", False),
    ]
    wrong = []
    for value, wanted in cases:
        ids = keys(entries(await search(ctx, "Encounter", [("date", value), ("_id", str(encounter["id"]))])))
        if (target in ids) != wanted:
            wrong.append(f"date={value} {'missed' if wanted else 'matched'} a period {start}..{end}")
    require(not wrong, "; ".join(wrong))
    return f"period {start}..{end} matched by overlap in {len(cases)} comparisons"


@check(
    "srv.search.reference",
    "Reference search: Type/id, id and absolute URL forms agree",
    spec=f"{SEARCH}#reference",
    section="3.1.1.5.6 reference",
)
async def search_reference(ctx: Context) -> str:
    observation, pid = sample_observation(await sample(ctx))
    await require_param(ctx, "Observation", "subject")
    results = {}
    for form, value in (("Type/id", f"Patient/{pid}"), ("id", pid)):
        results[form] = sorted(
            keys(entries(await search(ctx, "Observation", [("subject", value), ("_count", "1000")])))
        )
    require(
        f"Observation/{observation['id']}" in results["Type/id"],
        f"subject=Patient/{pid} did not find Observation/{observation['id']}",
    )
    require(
        results["id"] == results["Type/id"],
        f"subject=<id> found {len(results['id'])}, subject=Patient/<id> {len(results['Type/id'])}",
    )
    return f"both forms found the same {len(results['id'])} Observations"


@check(
    "srv.search.reference-absolute",
    "Reference search by the absolute URL of a resource on the server finds what Type/id finds",
    spec=f"{SEARCH}#reference",
    section="3.1.1.5.6 reference ([parameter]=[url])",
    severity=Severity.WARNING,
)
async def search_reference_absolute(ctx: Context) -> str:
    _, pid = sample_observation(await sample(ctx))
    await require_param(ctx, "Observation", "subject")
    relative = sorted(
        keys(entries(await search(ctx, "Observation", [("subject", f"Patient/{pid}"), ("_count", "1000")])))
    )
    absolute = sorted(
        keys(
            entries(await search(ctx, "Observation", [("subject", f"{ctx.target}/Patient/{pid}"), ("_count", "1000")]))
        )
    )
    require(
        absolute == relative,
        f"subject={ctx.target}/Patient/{pid} found {len(absolute)}, Patient/{pid} found {len(relative)}",
    )
    return f"both found the same {len(relative)} Observations"


@check(
    "srv.search.id",
    "Every resource a read returns is found by _id (read and search agree)",
    spec=f"{SEARCH}#id",
    section="3.1.1.4.1 _id",
)
async def search_id(ctx: Context) -> str:
    found = await sample(ctx)
    await require_param(ctx, "Patient", "_id")
    wanted = [found.patient_id]
    if found.subject_id:
        wanted.append(found.subject_id)
    missing = []
    for pid in wanted:
        answer = await ctx.get(f"Patient/{pid}")
        if answer.status != 200:
            continue
        if f"Patient/{pid}" not in keys(entries(await search(ctx, "Patient", [("_id", pid)]))):
            missing.append(pid)
    require(not missing, f"Patient/{', Patient/'.join(missing)} can be read but _id does not find it")
    return f"{len(wanted)} readable Patients found by _id"


@check(
    "srv.search.chain",
    "A chained search (subject:Patient.identifier) finds what the direct reference finds",
    spec=f"{SEARCH}#chaining",
    section="3.1.1.4.5 chained parameters",
)
async def search_chain(ctx: Context) -> str:
    observation, pid = sample_observation(await sample(ctx))
    await require_param(ctx, "Observation", "subject")
    subject = await ctx.get(f"Patient/{pid}")
    require(subject.status == 200, f"the Observation's subject Patient/{pid} cannot be read (HTTP {subject.status})")
    numbers = nhs_numbers(subject.json())
    if not numbers:
        raise NotApplicable("the sample Observation's subject has no NHS number")
    nhs = numbers[0].get("value")
    chained = keys(
        entries(
            await search(
                ctx, "Observation", [("subject:Patient.identifier", f"{NHS_NUMBER_SYSTEM}|{nhs}"), ("_count", "1000")]
            )
        )
    )
    require(f"Observation/{observation['id']}" in chained, f"the chain did not find Observation/{observation['id']}")
    unrelated = keys(
        entries(await search(ctx, "Observation", [("subject:Patient.identifier", f"{NHS_NUMBER_SYSTEM}|0000000000")]))
    )
    require(not unrelated, f"a chain on an NHS number nobody has found {len(unrelated)} Observations")
    return f"the chain found {len(chained)} Observations including the sample; a chain on an unknown number found none"


@check(
    "srv.search.include",
    "_include and _revinclude add the referenced and referring resources as include entries",
    spec=f"{SEARCH}#include",
    section="3.1.1.5.8 _include and _revinclude",
)
async def search_include(ctx: Context) -> str:
    observation, pid = sample_observation(await sample(ctx))
    entry = await require_type(ctx, "Observation")
    if "Observation:subject" not in (entry.get("searchInclude") or []) and "*" not in (
        entry.get("searchInclude") or []
    ):
        raise NotApplicable("Observation:subject is not a listed _include")
    bundle = await search(ctx, "Observation", [("_id", str(observation["id"])), ("_include", "Observation:subject")])
    included = keys(entries(bundle, mode="include"))
    require(
        f"Patient/{pid}" in included,
        f"_include=Observation:subject did not include the subject Patient/{pid} (included: {included})",
    )
    require(
        keys(entries(bundle)) == [f"Observation/{observation['id']}"], "the match entries are not just the Observation"
    )
    patient_entry = listed_types(await capability(ctx)).get("Patient", {})
    if "Observation:subject" in (patient_entry.get("searchRevInclude") or []):
        rev = await search(ctx, "Patient", [("_id", pid), ("_revinclude", "Observation:subject")])
        rev_included = keys(entries(rev, mode="include"))
        require(
            f"Observation/{observation['id']}" in rev_included,
            "_revinclude=Observation:subject did not include the Observation",
        )
        require(keys(entries(rev)) == [f"Patient/{pid}"], "_revinclude changed the match entries")
    return "the subject was included and the Observation rev-included, both with search.mode include"


async def _lastupdated_order(ctx: Context, resource_type: str, sort: str) -> list[str]:
    bundle = await search(ctx, resource_type, [("_sort", sort), ("_count", "50")])
    return [str((r.get("meta") or {}).get("lastUpdated") or "") for r in entries(bundle)]


@check(
    "srv.search.sort",
    "_sort=_lastUpdated and _sort=-_lastUpdated order the results",
    spec=f"{SEARCH}#_sort",
    section="3.1.1.5.10 _sort",
)
async def search_sort(ctx: Context) -> str:
    await require_type(ctx, "Observation")
    ascending = await _lastupdated_order(ctx, "Observation", "_lastUpdated")
    descending = await _lastupdated_order(ctx, "Observation", "-_lastUpdated")
    if len(set(ascending)) < 2:
        raise NotApplicable("fewer than two Observations with different meta.lastUpdated to sort")
    require(ascending == sorted(ascending), "_sort=_lastUpdated did not answer in ascending meta.lastUpdated order")
    require(descending == sorted(descending, reverse=True), "_sort=-_lastUpdated did not answer in descending order")
    return f"{len(ascending)} results ascending and descending by meta.lastUpdated"


@check(
    "srv.search.paging",
    "_count limits a page; next links page through every match once",
    spec=f"{HTTP}#paging",
    section="3.1.1.5.7 _count; 3.1.0.14 paging (Bundle.link next)",
)
async def search_paging(ctx: Context) -> str:
    _, pid = sample_observation(await sample(ctx))
    first = await search(ctx, "Observation", [("subject", f"Patient/{pid}"), ("_count", "1000")])
    everything = keys(entries(first))
    if len(everything) < 3:
        raise NotApplicable("the sample Patient has fewer than three Observations to page through")
    url: str | None = f"Observation{query([('subject', f'Patient/{pid}'), ('_count', '2')])}"
    seen: list[str] = []
    pages = 0
    while url and pages < 200:
        answer = await ctx.get(url)
        require(answer.status == 200, f"page {pages + 1} answered HTTP {answer.status}")
        bundle = answer.json()
        page = keys(entries(bundle))
        require(len(page) <= 2, f"page {pages + 1} holds {len(page)} matches with _count=2")
        require(link(bundle, "self"), f"page {pages + 1} has no self link")
        seen += page
        pages += 1
        url = link(bundle, "next")
    require(len(seen) == len(set(seen)), f"paging returned {len(seen) - len(set(seen))} matches twice")
    require(
        sorted(seen) == sorted(everything),
        f"paging found {len(seen)} matches, one page of 1000 found {len(everything)}",
    )
    return f"{len(seen)} matches over {pages} pages of two, each once"


@check(
    "srv.search.summary-count",
    "_summary=count answers the total and no entries; it agrees with the matches",
    spec=f"{SEARCH}#_summary",
    section="3.1.1.5.9 _summary=count",
)
async def search_summary_count(ctx: Context) -> str:
    _, pid = sample_observation(await sample(ctx))
    params = [("subject", f"Patient/{pid}")]
    counted = await search(ctx, "Observation", [*params, ("_summary", "count")])
    require(isinstance(counted.get("total"), int), "the _summary=count Bundle has no total")
    require(not entries(counted, mode=None), "the _summary=count Bundle carries entries")
    listed = keys(entries(await search(ctx, "Observation", [*params, ("_count", "1000")])))
    require(
        counted["total"] == len(listed), f"_summary=count says {counted['total']}, the search returns {len(listed)}"
    )
    return f"total {counted['total']} matches the {len(listed)} results"


@check(
    "srv.search.total",
    "_total=accurate gives a Bundle.total equal to the matches",
    spec=f"{SEARCH}#total",
    section="3.1.1.5.11 _total",
    severity=Severity.WARNING,
)
async def search_total(ctx: Context) -> str:
    _, pid = sample_observation(await sample(ctx))
    params = [("subject", f"Patient/{pid}"), ("_count", "1000")]
    bundle = await search(ctx, "Observation", [*params, ("_total", "accurate")])
    total = bundle.get("total")
    require(isinstance(total, int), "_total=accurate gave no Bundle.total")
    require(total == len(entries(bundle)), f"Bundle.total {total} but {len(entries(bundle))} matches")
    return f"total {total}"


@check(
    "srv.search.unknown-param-strict",
    "An unknown parameter with Prefer: handling=strict is refused with 400",
    spec=f"{SEARCH}#errors",
    section="3.1.1.4 handling errors (Prefer: handling=strict)",
)
async def unknown_strict(ctx: Context) -> str:
    await require_type(ctx, "Patient")
    answer = await ctx.get("Patient?conformance-unknown-param=1", headers={"prefer": "handling=strict"})
    require(answer.status == 400, f"HTTP {answer.status}, expected 400")
    ok, why = is_operation_outcome(answer)
    require(ok, f"the 400 carries no OperationOutcome: {why}")
    return "400 with an OperationOutcome"


@check(
    "srv.search.unknown-param-lenient",
    "An unknown parameter with Prefer: handling=lenient is ignored and left out of the self link",
    spec=f"{SEARCH}#errors",
    section="3.1.1.4 handling errors (lenient; self link shows the parameters used)",
)
async def unknown_lenient(ctx: Context) -> str:
    await require_type(ctx, "Patient")
    answer = await ctx.get("Patient?conformance-unknown-param=1&_count=1", headers={"prefer": "handling=lenient"})
    require(answer.status == 200, f"HTTP {answer.status}, expected 200")
    bundle = answer.json()
    self_link = link(bundle, "self") or ""
    require(self_link, "the Bundle has no self link")
    used = {name for name, _ in parse_qsl(urlsplit(self_link).query)}
    require("conformance-unknown-param" not in used, f"the self link {self_link} claims the ignored parameter was used")
    return "200, and the self link leaves the ignored parameter out"


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


@check(
    "srv.errors.operation-outcome",
    "Every error answer is a 4xx carrying an OperationOutcome, never a 5xx",
    spec=f"{HTTP}#3.1.0.4",
    section="3.1.0.4 (errors return an OperationOutcome); operationoutcome.html",
)
async def errors_outcome(ctx: Context) -> str:
    await require_type(ctx, "Patient")
    problems = []
    for method, path, body in _BAD_REQUESTS:
        answer = await ctx.request(method, path, content=body, headers={"prefer": "handling=strict"})
        if answer.status < 400:
            continue  # a server may legitimately accept some of these; others' checks judge that
        if answer.status >= 500:
            problems.append(f"{method} {path} → HTTP {answer.status} (a server error for a bad request)")
            continue
        ok, why = is_operation_outcome(answer)
        if not ok:
            problems.append(f"{method} {path} → HTTP {answer.status} without an OperationOutcome ({why})")
    require(not problems, "; ".join(problems))
    return f"{len(_BAD_REQUESTS)} bad requests: every error was a 4xx with an OperationOutcome"


@check(
    "srv.if-none-match",
    "If-None-Match with the current ETag answers 304 Not Modified",
    spec=f"{HTTP}#cread",
    section="3.1.0.5.2 conditional read (If-None-Match)",
    severity=Severity.WARNING,
)
async def if_none_match(ctx: Context) -> str:
    found = await sample(ctx)
    entry = await require_type(ctx, "Patient", "read")
    first = await ctx.get(f"Patient/{found.patient_id}")
    etag = first.header("etag")
    require(etag, "the read has no ETag")
    assert etag is not None
    again = await ctx.get(f"Patient/{found.patient_id}", headers={"if-none-match": etag})
    require(again.status == 304, f"If-None-Match {etag} answered HTTP {again.status}, expected 304")
    require(not again.body, "the 304 carries a body")
    declared = entry.get("conditionalRead", "not-supported")
    require(
        declared in ("not-match", "full-support"),
        f"the server honours If-None-Match but its CapabilityStatement says conditionalRead={declared!r}",
    )
    return f"304 for {etag}; conditionalRead={declared}"


@check(
    "srv.gzip",
    "Accept-Encoding: gzip is honoured for large answers",
    spec="https://www.rfc-editor.org/rfc/rfc9110#section-8.4",
    section="RFC 9110 §8.4 Content-Encoding (FHIR http.html 3.1.0.1.5 compression)",
    severity=Severity.WARNING,
)
async def gzip_encoding(ctx: Context) -> str:
    await require_type(ctx, "Observation")
    answer = await ctx.get("Observation?_count=50", headers={"accept-encoding": "gzip"})
    require(answer.status == 200, f"HTTP {answer.status}")
    if len(answer.body) < 2048:
        raise NotApplicable("the answer is too small to expect compression")
    require(
        answer.header("content-encoding") == "gzip",
        f"Content-Encoding is {answer.header('content-encoding')!r} for a {len(answer.body)}-byte answer",
    )
    require(gzip.decompress(answer.raw_body) == answer.body, "the gzip body does not decompress to the JSON")
    return f"{len(answer.raw_body)} gzip bytes for {len(answer.body)} bytes of JSON"


@check(
    "srv.format",
    "_format and Accept: JSON is served; an unsupported format is refused, not answered in JSON",
    spec=f"{HTTP}#mime-type",
    section="3.1.0.1.10 content types and encodings (_format)",
)
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
        require(answer.status in (406, 415), f"{how} (not listed) answered HTTP {answer.status}, expected 406")
    return "JSON served; XML, which is not listed, refused with 406"


@check(
    "srv.everything",
    "Patient/$everything returns the Patient and their compartment",
    spec=f"{R4}/patient-operation-everything.html",
    section="Patient $everything",
)
async def everything(ctx: Context) -> str:
    observation, pid = sample_observation(await sample(ctx))
    if "everything" not in operations(await capability(ctx), "Patient"):
        raise NotApplicable("$everything is not listed")
    url: str | None = f"Patient/{pid}/$everything?_count=1000"
    seen: list[str] = []
    pages = 0
    while url and pages < 50:
        answer = await ctx.get(url)
        require(answer.status == 200, f"$everything answered HTTP {answer.status}")
        bundle = answer.json()
        require(
            bundle.get("resourceType") == "Bundle" and bundle.get("type") == "searchset",
            "$everything did not answer a searchset Bundle",
        )
        seen += keys(entries(bundle, mode=None))
        url = link(bundle, "next")
        pages += 1
    require(f"Patient/{pid}" in seen, "the Patient is not in its own $everything")
    require(f"Observation/{observation['id']}" in seen, f"Observation/{observation['id']} is not in $everything")
    return f"{len(seen)} resources in {pages} page(s), the Patient and the sample Observation among them"


@check(
    "srv.match",
    "Patient/$match finds the Patient by NHS number with a score",
    spec=f"{R4}/patient-operation-match.html",
    section="Patient $match",
)
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
    require(answer.status == 200, f"$match answered HTTP {answer.status}")
    bundle = answer.json()
    require(
        bundle.get("resourceType") == "Bundle" and bundle.get("type") == "searchset",
        "$match did not answer a searchset Bundle",
    )
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
@check(
    "srv.smart.discovery",
    "/.well-known/smart-configuration describes the authorisation server",
    spec=f"{SMART}/conformance.html",
    section="SMART App Launch 2.0 §2.0.2 (well-known discovery, required fields)",
)
async def smart_discovery(ctx: Context) -> str:
    answer = await ctx.get(".well-known/smart-configuration", auth=False, headers={"accept": "application/json"})
    require(answer.status == 200, f"/.well-known/smart-configuration answered HTTP {answer.status}")
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


@check(
    "srv.smart.capability-security",
    "The CapabilityStatement declares SMART-on-FHIR security with OAuth URIs",
    spec=f"{SMART}/conformance.html",
    section="SMART App Launch 2.0 (CapabilityStatement.rest.security)",
    severity=Severity.WARNING,
)
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


@check(
    "srv.auth.negatives",
    "No token, a garbage token and an unsigned token are refused with 401 and an OperationOutcome",
    spec=f"{SMART}/app-launch.html",
    section="SMART App Launch 2.0 (access token use); RFC 6750 §3 (WWW-Authenticate)",
)
async def auth_negatives(ctx: Context) -> str:
    await require_type(ctx, "Patient")
    if not ctx.option("token"):
        raise NotApplicable("no --token given: the target is being tested as an open server")
    problems = []
    for why, headers in (
        ("no token", {}),
        ("a garbage token", {"authorization": "Bearer not-a-token"}),
        ("an unsigned (alg none) token", {"authorization": f"Bearer {_unsigned_token()}"}),
    ):
        answer = await ctx.get("Patient?_count=1", auth=False, headers=headers)
        if answer.status != 401:
            problems.append(f"{why} → HTTP {answer.status}")
            continue
        if not (answer.header("www-authenticate") or "").lower().startswith("bearer"):
            problems.append(f"{why} → 401 without WWW-Authenticate: Bearer")
        ok, detail = is_operation_outcome(answer)
        if not ok:
            problems.append(f"{why} → 401 without an OperationOutcome ({detail})")
    require(not problems, "; ".join(problems))
    return "all three refused with 401, WWW-Authenticate: Bearer and an OperationOutcome"
