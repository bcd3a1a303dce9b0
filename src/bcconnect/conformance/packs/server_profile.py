"""The server pack's shared care record profile and UK Core checks (registered on the server pack).

The profile needs fixture people the operator names: ``--objector NHS_NUMBER`` (a person in the objection
register: invisible everywhere, counts included) and ``--restricted NHS_NUMBER`` (a restricted patient: address,
telecom, contacts and GP never shown and never usable as a filter).
"""

from __future__ import annotations

import string
from typing import Any

import orjson

from bcconnect.conformance._context import Context, require
from bcconnect.conformance._fhir import (
    entries,
    identifier_problems,
    keys,
    link,
    nhs_number_problems,
    nhs_numbers,
    profile_problems,
    required_element_problems,
    search,
    verification_problems,
)
from bcconnect.conformance._model import NotApplicable
from bcconnect.conformance.packs._server_common import (
    PACK,
    capability,
    interactions,
    listed_types,
    operations,
    require_type,
)
from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM

check = PACK.check
#: what a restricted (v3-Confidentiality R) patient's record never shows
RESTRICTED_FIELDS = ("address", "telecom", "contact", "generalPractitioner")


def _fixture(ctx: Context, name: str) -> str:
    value = ctx.option(name)
    if not value:
        raise NotApplicable(f"no --{name} NHS number given; the profile check needs a fixture person")
    return value.replace(" ", "")


@check("ig.read-only")
async def read_only(ctx: Context) -> str:
    await require_type(ctx, "Patient")
    probe = {"resourceType": "Patient", "name": [{"family": "Conformance-Probe", "given": ["Write"]}]}
    body = orjson.dumps(probe)
    accepted, problems = [], []
    for method, path, content in (
        ("POST", "Patient", body),
        ("PUT", "Patient/conformance-write-probe", orjson.dumps({**probe, "id": "conformance-write-probe"})),
        ("PATCH", "Patient/conformance-write-probe", b"[]"),
        ("DELETE", "Patient/conformance-write-probe", None),
    ):
        answer = await ctx.request(method, path, content=content, headers={"content-type": "application/fhir+json"})
        if 200 <= answer.status < 300:
            accepted.append(f"{method} {path} → HTTP {answer.status}")
            location = answer.header("location") or ""
            if "Patient/" in location:  # undo what the probe created, as far as the server lets us
                created = "Patient/" + location.split("Patient/", 1)[1].split("/")[0]
                await ctx.request("DELETE", created, note="removing the probe the server accepted")
        elif answer.status != 405:
            problems.append(f"{method} {path} → HTTP {answer.status}, expected 405")
    require(not accepted, "writes were accepted: " + "; ".join(accepted))
    require(not problems, "; ".join(problems))
    return "POST, PUT, PATCH and DELETE refused with 405"


@check("ig.objector-invisible")
async def objector_invisible(ctx: Context) -> str:
    nhs = _fixture(ctx, "objector")
    await require_type(ctx, "Patient")
    leaks = []
    for params in (
        [("identifier", f"{NHS_NUMBER_SYSTEM}|{nhs}")],
        [("identifier", nhs)],
        [("identifier", f"{NHS_NUMBER_SYSTEM}|{nhs}"), ("_summary", "count")],
        [("identifier", f"{NHS_NUMBER_SYSTEM}|{nhs}"), ("_total", "accurate")],
    ):
        bundle = await search(ctx, "Patient", params)
        shown = entries(bundle)
        total = bundle.get("total")
        if shown or (isinstance(total, int) and total > 0):
            leaks.append(f"Patient?{'&'.join(f'{k}={v}' for k, v in params)} → {len(shown)} entries, total {total}")
    types = listed_types(await capability(ctx))
    for rtype in ("Observation", "Encounter", "Condition"):
        if rtype not in types:
            continue
        for params in (
            [("subject:Patient.identifier", f"{NHS_NUMBER_SYSTEM}|{nhs}")],
            [("subject:Patient.identifier", f"{NHS_NUMBER_SYSTEM}|{nhs}"), ("_summary", "count")],
        ):
            answer = await ctx.get(f"{rtype}?{'&'.join(f'{k}={v}' for k, v in params)}")
            if answer.status != 200:
                continue  # a refused chain reveals nothing
            bundle = answer.json()
            if entries(bundle) or (bundle.get("total") or 0) > 0:
                leaks.append(
                    f"{rtype} chained on the objector → {len(entries(bundle))} entries, total {bundle.get('total')}"
                )
    if "match" in operations(await capability(ctx), "Patient"):
        probe = {"resourceType": "Patient", "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}]}
        parameters = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": probe}]}
        answer = await ctx.request(
            "POST",
            "Patient/$match",
            content=orjson.dumps(parameters),
            headers={"content-type": "application/fhir+json"},
        )
        if answer.status == 200 and entries(answer.json(), mode=None):
            leaks.append(f"$match on the objector's NHS number → {len(entries(answer.json(), mode=None))} entries")
    require(not leaks, "the objector is visible: " + "; ".join(leaks))
    return "no search, count, chain or $match revealed the objector"


async def _restricted_patient(ctx: Context, nhs: str) -> dict[str, Any]:
    bundle = await search(ctx, "Patient", [("identifier", f"{NHS_NUMBER_SYSTEM}|{nhs}")])
    found = entries(bundle)
    if not found:
        raise NotApplicable(f"no Patient with NHS number {nhs} is visible to test restriction with")
    return found[0]


def _shown_fields(resource: dict[str, Any]) -> list[str]:
    return [f for f in RESTRICTED_FIELDS if resource.get(f)]


@check("ig.restricted-hidden")
async def restricted_hidden(ctx: Context) -> str:
    nhs = _fixture(ctx, "restricted")
    patient = await _restricted_patient(ctx, nhs)
    pid = str(patient["id"])
    shown: list[str] = []
    if fields := _shown_fields(patient):
        shown.append(f"search shows {fields}")
    entry = listed_types(await capability(ctx)).get("Patient", {})
    codes = interactions(entry)
    read_answer = await ctx.get(f"Patient/{pid}")
    if read_answer.status == 200 and (fields := _shown_fields(read_answer.json())):
        shown.append(f"read shows {fields}")
    version = (patient.get("meta") or {}).get("versionId")
    if "vread" in codes and version:
        answer = await ctx.get(f"Patient/{pid}/_history/{version}")
        if answer.status == 200 and (fields := _shown_fields(answer.json())):
            shown.append(f"vread shows {fields}")
    if "history-instance" in codes:
        answer = await ctx.get(f"Patient/{pid}/_history")
        if answer.status == 200:
            for old in entries(answer.json(), mode=None):
                if fields := _shown_fields(old):
                    shown.append(f"history version {(old.get('meta') or {}).get('versionId')} shows {fields}")
    if "everything" in operations(await capability(ctx), "Patient"):
        answer = await ctx.get(f"Patient/{pid}/$everything")
        if answer.status == 200:
            for item in entries(answer.json(), mode=None):
                if item.get("resourceType") == "Patient" and (fields := _shown_fields(item)):
                    shown.append(f"$everything shows {fields}")
    if "Patient:general-practitioner" in (entry.get("searchInclude") or []):
        bundle = await search(ctx, "Patient", [("_id", pid), ("_include", "Patient:general-practitioner")])
        if included := keys(entries(bundle, mode="include")):
            shown.append(f"_include=Patient:general-practitioner adds {included}")
    require(not shown, "restricted fields are shown: " + "; ".join(shown))
    return f"Patient/{pid} shows none of {', '.join(RESTRICTED_FIELDS)} anywhere"


@check("ig.restricted-not-filterable")
async def restricted_not_filterable(ctx: Context) -> str:
    nhs = _fixture(ctx, "restricted")
    patient = await _restricted_patient(ctx, nhs)
    pid = str(patient["id"])
    entry = listed_types(await capability(ctx)).get("Patient", {})
    params = {p.get("name") for p in entry.get("searchParam") or []}
    probes = [p for p in ("address", "address-postalcode") if p in params]
    if not probes:
        raise NotApplicable("the server lists no address search parameter")
    revealing = []
    # every address starts with a letter or a digit: a prefix search with each reveals a filterable address
    for name in probes:
        for first in string.ascii_uppercase + string.digits:
            answer = await ctx.get(f"Patient?_id={pid}&{name}={first}")
            if answer.status == 200 and f"Patient/{pid}" in keys(entries(answer.json())):
                revealing.append(f"{name}={first}")
                break
    ctx.exchanges[:] = [e for e in ctx.exchanges if e.status != 200 or any(r in e.url for r in revealing)]
    require(not revealing, f"Patient/{pid} is found by its hidden address: " + ", ".join(revealing))
    return f"no prefix of {', '.join(probes)} finds Patient/{pid}"


# --- UK Core conformance of what comes back ----------------------------------------------------------------
async def _returned(ctx: Context) -> list[dict[str, Any]]:
    types = listed_types(await capability(ctx))
    found: list[dict[str, Any]] = []
    for rtype in sorted(types):
        if "search-type" not in interactions(types[rtype]) or rtype in ("AuditEvent", "Provenance"):
            continue
        answer = await ctx.get(f"{rtype}?_count=20")
        if answer.status == 200:
            found += entries(answer.json())
            if rtype == "Patient" and link(answer.json(), "next"):
                more = await ctx.get(f"{rtype}?_count=100")
                if more.status == 200:
                    found += entries(more.json())
    return found


async def returned(ctx: Context) -> list[dict[str, Any]]:
    """A sample of every listed type (up to 20 each, 120 Patients), fetched once per run."""
    resources = await ctx.shared("returned", _returned)
    if not resources:
        raise NotApplicable("the server returned no resources to judge")
    ctx.note(f"judged {len(resources)} returned resources")
    return resources


def _judge(resources: list[dict[str, Any]], problems_of: Any, what: str) -> str:
    problems = [p for r in resources for p in problems_of(r)]
    require(not problems, f"{len(problems)} problem(s): " + "; ".join(problems[:15]))
    return f"{len(resources)} resources: {what}"


@check("ukcore.identifier-systems")
async def identifier_systems(ctx: Context) -> str:
    return _judge(await returned(ctx), identifier_problems, "every identifier has a system")


def _with_nhs_numbers(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [r for r in resources if nhs_numbers(r)]
    if not found:
        raise NotApplicable(f"none of the {len(resources)} resources returned carries an NHS number")
    return found


@check("ukcore.nhs-number")
async def nhs_number(ctx: Context) -> str:
    return _judge(_with_nhs_numbers(await returned(ctx)), nhs_number_problems, "every NHS number is valid")


@check("ukcore.nhs-verification")
async def nhs_verification(ctx: Context) -> str:
    return _judge(
        _with_nhs_numbers(await returned(ctx)), verification_problems, "every NHS number has its verification status"
    )


@check("ukcore.required-elements")
async def required_elements(ctx: Context) -> str:
    return _judge(await returned(ctx), required_element_problems, "required elements present")


@check("ukcore.profile-claims")
async def profile_claims(ctx: Context) -> str:
    return _judge(await returned(ctx), profile_problems, "profile claims consistent")
