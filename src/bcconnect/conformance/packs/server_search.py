"""The server pack, part two: search semantics per parameter type, modifiers and result parameters.

Each check searches for the sample record (found once per run) in the forms the specification defines and
judges what the server matched; the catalogue (``server.toml``) says what each enforces and where.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from bcconnect.conformance._context import Context, require
from bcconnect.conformance._fhir import (
    entries,
    keys,
    link,
    nhs_numbers,
    query,
    search,
)
from bcconnect.conformance._judge import expect_bundle, expect_outcome, judge_matches, matched
from bcconnect.conformance._model import NotApplicable
from bcconnect.conformance.packs._server_common import (
    PACK,
    capability,
    listed_types,
    require_param,
    require_type,
    sample,
    sample_observation,
)
from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM

check = PACK.check


# --- search by parameter type ------------------------------------------------------------------------------
@check("srv.search.token")
async def search_token(ctx: Context) -> str:
    found = await sample(ctx)
    await require_param(ctx, "Patient", "identifier")
    if found.nhs_number is None:
        raise NotApplicable("the sample Patient has no NHS number")
    everyone, scoped = [("_count", "1000")], [("_id", found.patient_id)]
    findings = await judge_matches(
        ctx,
        "Patient",
        f"Patient/{found.patient_id}",
        [
            ("identifier", f"{NHS_NUMBER_SYSTEM}|{found.nhs_number}", True),
            ("identifier", found.nhs_number, True),
            ("identifier", f"http://example.org/other-system|{found.nhs_number}", False),
        ],
        scope=everyone,
    )
    findings.items += (
        await judge_matches(
            ctx, "Patient", f"Patient/{found.patient_id}", [("identifier", f"{NHS_NUMBER_SYSTEM}|", True)], scope=scoped
        )
    ).items
    return findings.verdict("system|code, code and system| matched; the number under another system did not")


@check("srv.search.string")
async def search_string(ctx: Context) -> str:
    found = await sample(ctx)
    await require_param(ctx, "Patient", "family")
    family = found.family
    if not family or len(family) < 3:
        raise NotApplicable("the sample Patient's family name is too short")
    prefix = family[:3].swapcase()
    cases = [
        ("family", prefix, True),  # a case-swapped prefix
        ("family", family, True),
        ("family:exact", family, True),
        ("family:exact", family[:-1], False),  # a prefix is not exact
    ]
    if family.swapcase() != family:
        cases.append(("family:exact", family.swapcase(), False))  # nor is another case
    findings = await judge_matches(
        ctx, "Patient", f"Patient/{found.patient_id}", cases, scope=[("_id", found.patient_id)]
    )
    return findings.verdict(f"prefix {prefix!r} matched, :exact matched only {family!r}")


@check("srv.search.date")
async def search_date(ctx: Context) -> str:
    found = await sample(ctx)
    await require_param(ctx, "Patient", "birthdate")
    born = str(found.patient.get("birthDate"))
    year = born[:4]
    comparisons = [
        (born, True),
        (year, True),  # a year is the range of the whole year
        (f"ge{born}", True),
        (f"le{born}", True),
        (f"gt{born}", False),
        (f"lt{born}", False),
        (f"eq{int(year) + 1}", False),
        (f"ne{born}", False),
    ]
    findings = await judge_matches(
        ctx,
        "Patient",
        f"Patient/{found.patient_id}",
        [("birthdate", value, wanted) for value, wanted in comparisons],
        scope=[("_id", found.patient_id)],
        about=f"born {born}",
    )
    return findings.verdict(f"{len(comparisons)} date comparisons against {born} behaved as ranges")


@check("srv.search.date-period")
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
    comparisons = [
        (f"ge{start}", True),
        (f"le{end}", True),
        (f"le{start}", True),  # the period starts during that day
        (f"ge{end}", True),  # the period ends during that day
        (f"lt{start}", False),
        (f"gt{end}", False),
    ]
    findings = await judge_matches(
        ctx,
        "Encounter",
        f"Encounter/{encounter['id']}",
        [("date", value, wanted) for value, wanted in comparisons],
        scope=[("_id", str(encounter["id"]))],
        about=f"a period {start}..{end}",
    )
    return findings.verdict(f"period {start}..{end} matched by overlap in {len(comparisons)} comparisons")


@check("srv.search.reference")
async def search_reference(ctx: Context) -> str:
    observation, pid = sample_observation(await sample(ctx))
    await require_param(ctx, "Observation", "subject")
    results = {}
    for form, value in (("Type/id", f"Patient/{pid}"), ("id", pid)):
        results[form] = sorted(await matched(ctx, "Observation", [("subject", value), ("_count", "1000")]))
    require(
        f"Observation/{observation['id']}" in results["Type/id"],
        f"subject=Patient/{pid} did not find Observation/{observation['id']}",
    )
    require(
        results["id"] == results["Type/id"],
        f"subject=<id> found {len(results['id'])}, subject=Patient/<id> {len(results['Type/id'])}",
    )
    return f"both forms found the same {len(results['id'])} Observations"


@check("srv.search.reference-absolute")
async def search_reference_absolute(ctx: Context) -> str:
    _, pid = sample_observation(await sample(ctx))
    await require_param(ctx, "Observation", "subject")
    relative = sorted(await matched(ctx, "Observation", [("subject", f"Patient/{pid}"), ("_count", "1000")]))
    absolute = sorted(
        await matched(ctx, "Observation", [("subject", f"{ctx.target}/Patient/{pid}"), ("_count", "1000")])
    )
    require(
        absolute == relative,
        f"subject={ctx.target}/Patient/{pid} found {len(absolute)}, Patient/{pid} found {len(relative)}",
    )
    return f"both found the same {len(relative)} Observations"


@check("srv.search.id")
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
        if f"Patient/{pid}" not in await matched(ctx, "Patient", [("_id", pid)]):
            missing.append(pid)
    require(not missing, f"Patient/{', Patient/'.join(missing)} can be read but _id does not find it")
    return f"{len(wanted)} readable Patients found by _id"


@check("srv.search.chain")
async def search_chain(ctx: Context) -> str:
    observation, pid = sample_observation(await sample(ctx))
    await require_param(ctx, "Observation", "subject")
    subject = await ctx.get(f"Patient/{pid}")
    require(subject.status == 200, f"the Observation's subject Patient/{pid} cannot be read (HTTP {subject.status})")
    numbers = nhs_numbers(subject.json())
    if not numbers:
        raise NotApplicable("the sample Observation's subject has no NHS number")
    nhs = numbers[0].get("value")
    chained = await matched(
        ctx, "Observation", [("subject:Patient.identifier", f"{NHS_NUMBER_SYSTEM}|{nhs}"), ("_count", "1000")]
    )
    require(f"Observation/{observation['id']}" in chained, f"the chain did not find Observation/{observation['id']}")
    unrelated = await matched(ctx, "Observation", [("subject:Patient.identifier", f"{NHS_NUMBER_SYSTEM}|0000000000")])
    require(not unrelated, f"a chain on an NHS number nobody has found {len(unrelated)} Observations")
    return f"the chain found {len(chained)} Observations including the sample; a chain on an unknown number found none"


@check("srv.search.include")
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


@check("srv.search.sort")
async def search_sort(ctx: Context) -> str:
    await require_type(ctx, "Observation")
    ascending = await _lastupdated_order(ctx, "Observation", "_lastUpdated")
    descending = await _lastupdated_order(ctx, "Observation", "-_lastUpdated")
    seen = ascending + descending
    if len(set(seen)) < 2:
        # records loaded in one batch can share an instant; the two ends of the order must still differ
        raise NotApplicable("the first pages in both orders share one meta.lastUpdated: nothing to sort by")
    require(ascending == sorted(ascending), "_sort=_lastUpdated did not answer in ascending meta.lastUpdated order")
    require(descending == sorted(descending, reverse=True), "_sort=-_lastUpdated did not answer in descending order")
    require(
        ascending[0] == min(seen) and descending[0] == max(seen),
        f"the orders do not start at their ends: ascending starts {ascending[0]}, descending {descending[0]}",
    )
    return f"{len(ascending)} results each way: from {ascending[0]} up, from {descending[0]} down"


@check("srv.search.paging")
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
        bundle = expect_bundle(await ctx.get(url), f"page {pages + 1}")
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


@check("srv.search.summary-count")
async def search_summary_count(ctx: Context) -> str:
    _, pid = sample_observation(await sample(ctx))
    params = [("subject", f"Patient/{pid}")]
    counted = await search(ctx, "Observation", [*params, ("_summary", "count")])
    require(isinstance(counted.get("total"), int), "the _summary=count Bundle has no total")
    require(not entries(counted, mode=None), "the _summary=count Bundle carries entries")
    listed = await matched(ctx, "Observation", [*params, ("_count", "1000")])
    require(
        counted["total"] == len(listed), f"_summary=count says {counted['total']}, the search returns {len(listed)}"
    )
    return f"total {counted['total']} matches the {len(listed)} results"


@check("srv.search.total")
async def search_total(ctx: Context) -> str:
    _, pid = sample_observation(await sample(ctx))
    params = [("subject", f"Patient/{pid}"), ("_count", "1000")]
    bundle = await search(ctx, "Observation", [*params, ("_total", "accurate")])
    total = bundle.get("total")
    require(isinstance(total, int), "_total=accurate gave no Bundle.total")
    require(total == len(entries(bundle)), f"Bundle.total {total} but {len(entries(bundle))} matches")
    return f"total {total}"


@check("srv.search.unknown-param-strict")
async def unknown_strict(ctx: Context) -> str:
    await require_type(ctx, "Patient")
    answer = await ctx.get("Patient?conformance-unknown-param=1", headers={"prefer": "handling=strict"})
    expect_outcome(answer, 400, "an unknown parameter under handling=strict")
    return "400 with an OperationOutcome"


@check("srv.search.unknown-param-lenient")
async def unknown_lenient(ctx: Context) -> str:
    await require_type(ctx, "Patient")
    answer = await ctx.get("Patient?conformance-unknown-param=1&_count=1", headers={"prefer": "handling=lenient"})
    bundle = expect_bundle(answer, "an unknown parameter under handling=lenient")
    self_link = link(bundle, "self") or ""
    require(self_link, "the Bundle has no self link")
    used = {name for name, _ in parse_qsl(urlsplit(self_link).query)}
    require("conformance-unknown-param" not in used, f"the self link {self_link} claims the ignored parameter was used")
    return "200, and the self link leaves the ignored parameter out"
