"""Triage operations on the read-only endpoint, each with its OperationDefinition (listed in the metadata).

``GET [base]/ServiceRequest/$triage-worklist?network=ENT[&trust=RNA][&priority=asap]``
    Referrals awaiting triage in a clinical network across every trust, in worklist order; each entry carries
    the worklist facts (days waiting, likely duplicates, routing advice, context counts and flags).
``GET [base]/EpisodeOfCare/$waiting-list[?tfc=120][&trust=RNA][&min-weeks=40][&pidmas-eligible=true]``
    Open RTT pathways across the trusts, longest wait first; each entry carries its clock and PIDMAS verdict.

Both page with ``_count`` and ``_getpagesoffset`` (``next`` links), take ``as-of`` (a date: the day the clock
is counted at, default today) and are screened and audited like every other read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import orjson

from bcconnect.api._bundle import link_url
from bcconnect.api._handlers import Env
from bcconnect.api._http import Request, Response
from bcconnect.api._router import Route
from bcconnect.errors import ConfigError, InvalidRequest, ResourceNotFound
from bcconnect.triage import PathwayRow, Triage, WorklistItem
from bcconnect.view import AccessContext

BASE = "https://bcconnect.nhs.uk"
WORKLIST_EXTENSION = f"{BASE}/StructureDefinition/triage-worklist-entry"
WAITING_EXTENSION = f"{BASE}/StructureDefinition/waiting-list-entry"

_COMMON_PARAMS: list[dict[str, Any]] = [
    {"name": "as-of", "use": "in", "min": 0, "max": "1", "type": "date",
     "documentation": "The day waits are counted at (default: today)."},
    {"name": "_count", "use": "in", "min": 0, "max": "1", "type": "integer", "documentation": "Page size."},
    {"name": "_getpagesoffset", "use": "in", "min": 0, "max": "1", "type": "integer",
     "documentation": "Offset of the page (from the next link)."},
    {"name": "return", "use": "out", "min": 1, "max": "1", "type": "Bundle",
     "documentation": "A searchset Bundle; each entry's extension carries the computed facts."},
]  # fmt: skip

OPERATION_DEFINITIONS: dict[str, dict[str, Any]] = {
    "triage-worklist": {
        "resourceType": "OperationDefinition",
        "id": "triage-worklist",
        "url": f"{BASE}/OperationDefinition/triage-worklist",
        "version": "1.0.0",
        "name": "TriageWorklist",
        "title": "Referrals awaiting triage in a clinical network, across the trusts",
        "status": "active",
        "kind": "operation",
        "code": "triage-worklist",
        "affectsState": False,
        "resource": ["ServiceRequest"],
        "system": False,
        "type": True,
        "instance": False,
        "description": (
            "Two-week-wait first, then urgent, then routine, each by days waiting (longest first); per referral "
            "the likely duplicates at other trusts, routing advice and the person's cross-site context counts."
        ),
        "parameter": [
            {
                "name": "network",
                "use": "in",
                "min": 1,
                "max": "1",
                "type": "string",
                "documentation": "Clinical network (Breast, Colorectal, Critical Care, ENT, …).",
            },
            {
                "name": "trust",
                "use": "in",
                "min": 0,
                "max": "1",
                "type": "string",
                "documentation": "Only referrals to this trust (ODS code).",
            },
            {
                "name": "priority",
                "use": "in",
                "min": 0,
                "max": "1",
                "type": "code",
                "documentation": "routine | urgent | asap",
            },
            *_COMMON_PARAMS,
        ],
    },
    "waiting-list": {
        "resourceType": "OperationDefinition",
        "id": "waiting-list",
        "url": f"{BASE}/OperationDefinition/waiting-list",
        "version": "1.0.0",
        "name": "WaitingList",
        "title": "The shared RTT waiting list (patient tracking list) across the trusts",
        "status": "active",
        "kind": "operation",
        "code": "waiting-list",
        "affectsState": False,
        "resource": ["EpisodeOfCare"],
        "system": False,
        "type": True,
        "instance": False,
        "description": (
            "Open referral-to-treatment pathways (one per patient pathway identifier, across providers), weeks "
            "waited by the NHS RTT rules, longest first, with PIDMAS eligibility and its reasons."
        ),
        "parameter": [
            {
                "name": "tfc",
                "use": "in",
                "min": 0,
                "max": "1",
                "type": "string",
                "documentation": "Treatment function code (120 = ENT).",
            },
            {
                "name": "trust",
                "use": "in",
                "min": 0,
                "max": "1",
                "type": "string",
                "documentation": "Current provider (ODS code).",
            },
            {
                "name": "min-weeks",
                "use": "in",
                "min": 0,
                "max": "1",
                "type": "integer",
                "documentation": "Only pathways waiting more than this many weeks.",
            },
            {
                "name": "pidmas-eligible",
                "use": "in",
                "min": 0,
                "max": "1",
                "type": "boolean",
                "documentation": "true: only PIDMAS cohort 1 (mutual aid) eligible pathways.",
            },
            *_COMMON_PARAMS,
        ],
    },
}
#: parameters each operation takes (anything else is a 400, as for search)
_ACCEPTS = {
    "triage-worklist": {"network", "trust", "priority", "as-of", "_count", "_getpagesoffset", "_format", "_pretty"},
    "waiting-list": {"tfc", "trust", "min-weeks", "pidmas-eligible", "as-of", "_count", "_getpagesoffset",
                     "_format", "_pretty"},
}  # fmt: skip


def _check_params(request: Request, operation: str) -> None:
    unknown = sorted({k for k, _ in request.query} - _ACCEPTS[operation])
    if unknown:
        raise InvalidRequest(f"${operation} does not take {', '.join(unknown)}", expression=unknown)


def _int(request: Request, name: str, default: int | None) -> int | None:
    raw = request.param(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise InvalidRequest(f"{name}: expected a non-negative integer, got {raw!r}", expression=[name])
    return int(raw)


def _as_of(request: Request) -> date | None:
    raw = request.param("as-of")
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"as-of: {raw!r} is not a date (YYYY-MM-DD)", expression=["as-of"]) from None


def _page(env: Env, request: Request, operation: str, path: str, entries: Sequence[dict[str, Any]]) -> bytes:
    count = min(_int(request, "_count", env.view.default_count) or 0, env.view.max_count)
    offset = _int(request, "_getpagesoffset", 0) or 0
    shown = entries[offset : offset + count]
    kept = [(k, v) for k, v in request.query if k != "_getpagesoffset"]
    links = [{"relation": "self", "url": link_url(request.base_url, path, request.query)}]
    if offset + count < len(entries):
        links.append(
            {
                "relation": "next",
                "url": link_url(request.base_url, path, [*kept, ("_getpagesoffset", str(offset + count))]),
            }
        )
    if offset > 0:
        links.append(
            {"relation": "previous",
             "url": link_url(request.base_url, path, [*kept, ("_getpagesoffset", str(max(0, offset - count)))])}
        )  # fmt: skip
    return orjson.dumps(
        {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "link": links, "entry": list(shown)}
    )


def _entry(base_url: str, resource: Mapping[str, Any], url: str, facts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "fullUrl": f"{base_url}/{resource.get('resourceType')}/{resource.get('id')}",
        "resource": resource,
        "search": {"mode": "match"},
        "extension": [{"url": url, "extension": facts}],
    }


def _worklist_facts(item: WorklistItem) -> list[dict[str, Any]]:
    facts: list[dict[str, Any]] = [
        {"url": "network", "valueString": item.network},
        {"url": "priority", "valueString": item.priority_label},
        {"url": "daysWaiting", "valueInteger": item.days_waiting},
        {"url": "trust", "valueString": item.referral.trust},
    ]
    facts += [{"url": "possibleDuplicate", "valueReference": {"reference": f"ServiceRequest/{d.id}",
                                                              "display": f"open at {d.trust}"}}
              for d in item.duplicates]  # fmt: skip
    if item.route:
        facts.append({"url": "routing", "valueString": item.route})
    ctx = item.context
    if ctx is not None:
        facts += [
            {"url": "aeAttendances12m", "valueInteger": len(ctx.ae_attendances)},
            {"url": "emergencyAdmissions12m", "valueInteger": len(ctx.emergency_admissions)},
            {"url": "longTermConditions", "valueInteger": ctx.long_term_conditions},
            {"url": "trustsWithRecords", "valueString": ",".join(ctx.trusts)},
        ]
        facts += [{"url": "flag", "valueString": flag} for flag in ctx.flags]
    return facts


def _waiting_facts(row: PathwayRow) -> list[dict[str, Any]]:
    clock = row.clock
    facts: list[dict[str, Any]] = [
        {"url": "clockState", "valueCode": clock.state.value},
        {"url": "trust", "valueString": row.trust},
        {"url": "priority", "valueCode": row.priority},
        {"url": "daysWaited", "valueInteger": row.days_waited},
        {"url": "weeksWaited", "valueInteger": row.weeks_waited},
        {"url": "pidmasEligible", "valueBoolean": row.pidmas_eligible},
    ]
    if clock.start:
        facts.append({"url": "clockStart", "valueDate": clock.start.isoformat()})
    if row.tfc:
        facts.append({"url": "treatmentFunction", "valueString": row.tfc})
    if row.ppi:
        facts.append({"url": "patientPathwayIdentifier", "valueString": row.ppi})
    if row.next_activity:
        facts.append({"url": "nextActivity", "valueDate": row.next_activity.isoformat()})
    facts += [{"url": "provider", "valueString": p} for p in clock.providers]
    facts += [{"url": "pidmasExclusion", "valueString": e} for e in row.exclusions]
    return facts


def _triage(env: Env) -> Triage:
    return env.triage if env.triage is not None else Triage(env.view)


async def triage_worklist(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/ServiceRequest/$triage-worklist?network=…``."""
    _check_params(request, "triage-worklist")
    network = request.param("network")
    if not network:
        raise InvalidRequest("$triage-worklist needs network (e.g. network=ENT)", expression=["network"])
    priority = request.param("priority")
    if priority and priority not in ("routine", "urgent", "asap"):
        raise InvalidRequest("priority: routine, urgent or asap", expression=["priority"])
    triage, as_of = _triage(env), _as_of(request)
    try:
        items = await triage.worklist(
            access, network, trust=request.param("trust"), priority=priority, as_of=as_of, with_context=False
        )
    except ConfigError as exc:
        raise InvalidRequest(str(exc), expression=["network"]) from exc
    # the cross-site context is read for the page shown only (a long worklist is not read person by person)
    count = min(_int(request, "_count", env.view.default_count) or 0, env.view.max_count)
    offset = _int(request, "_getpagesoffset", 0) or 0
    items[offset : offset + count] = await triage.add_context(access, items[offset : offset + count], as_of=as_of)
    entries = [_entry(request.base_url, i.referral.resource, WORKLIST_EXTENSION, _worklist_facts(i)) for i in items]
    body = _page(env, request, "triage-worklist", "ServiceRequest/$triage-worklist", entries)
    return Response(200, body, patients=frozenset(i.person for i in items))


async def waiting_list(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/EpisodeOfCare/$waiting-list``."""
    _check_params(request, "waiting-list")
    flag = request.param("pidmas-eligible")
    if flag not in (None, "true", "false"):
        raise InvalidRequest("pidmas-eligible: true or false", expression=["pidmas-eligible"])
    rows = await _triage(env).waiting_list(
        access,
        tfc=request.param("tfc"),
        trust=request.param("trust"),
        min_weeks=_int(request, "min-weeks", None),
        pidmas_eligible=flag == "true",
        as_of=_as_of(request),
    )
    entries = [_entry(request.base_url, r.resource or {}, WAITING_EXTENSION, _waiting_facts(r)) for r in rows]
    body = _page(env, request, "waiting-list", "EpisodeOfCare/$waiting-list", entries)
    return Response(200, body, patients=frozenset(r.person for r in rows))


async def operation_definition(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/OperationDefinition/{id}`` for the operations this server defines."""
    found = OPERATION_DEFINITIONS.get(route.id or "")
    if found is None:
        raise ResourceNotFound(f"OperationDefinition/{route.id} is not defined here")
    return Response(200, orjson.dumps(found))


TRIAGE_HANDLERS = {
    "triage-worklist": triage_worklist,
    "waiting-list": waiting_list,
    "operation-definition": operation_definition,
}
