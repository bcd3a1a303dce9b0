"""Cohorts as FHIR ``Group`` resources on the endpoint: read, search, and ``$recompute``.

``GET [base]/Group/{id}`` — the cohort (``type=person``, ``actual=true``, ``quantity``, ``member.entity`` →
golden Patients, the definition and computation time in extensions, the opt-out/objection removed counts).
``GET [base]/Group?name=&_id=&identifier=&_summary=count`` — search (entries without ``member``, tagged
SUBSETTED: a cohort can hold a hundred thousand people; read one Group for its members).
``POST [base]/Group/{id}/$recompute`` — recompute now (a ``system/`` scope on Group is needed).

Who sees members: ``user/`` and ``system/`` scopes on Group. A ``patient/`` token (confined to one person)
gets the Group without ``member`` — cohort counts are aggregate, the list of people is not theirs to see.
"""

from __future__ import annotations

from typing import Any

import orjson

from bcconnect.api._bundle import link_url
from bcconnect.api._group_capability import RECOMPUTE_DEFINITION
from bcconnect.api._handlers import Env
from bcconnect.api._http import Request, Response
from bcconnect.api._router import Route
from bcconnect.cohorts import Cohorts, cohort_group, cohort_groups
from bcconnect.errors import Forbidden, InvalidRequest, ResourceNotFound
from bcconnect.view import AccessContext

_SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
_MISSING = {"name:missing", "_id:missing", "identifier:missing"}
_SEARCH_PARAMS = _MISSING | {"name", "name:exact", "name:contains", "_id", "identifier", "_summary", "_count",
                             "_format", "_pretty", "_getpagesoffset"}  # fmt: skip
_READ_PARAMS = {"_summary", "_format", "_pretty"}

RECOMPUTE_OPERATION: dict[str, Any] = {
    "resourceType": "OperationDefinition",
    "id": "group-recompute",
    "url": RECOMPUTE_DEFINITION,
    "version": "1.0.0",
    "name": "GroupRecompute",
    "title": "Recompute a population cohort now",
    "status": "active",
    "kind": "operation",
    "code": "recompute",
    "affectsState": True,
    "resource": ["Group"],
    "system": False,
    "type": False,
    "instance": True,
    "description": "Recompute the cohort's membership from its definition over the current record; needs a system/ "
    "scope on Group. Returns the Group (without member).",
    "parameter": [
        {"name": "return", "use": "out", "min": 1, "max": "1", "type": "Group",
         "documentation": "The recomputed Group, without member."},
    ],
}  # fmt: skip


def _check(request: Request, allowed: set[str], what: str) -> None:
    unknown = sorted({k for k, _ in request.query} - allowed)
    if unknown:
        raise InvalidRequest(f"{what} does not take {', '.join(unknown)}", expression=unknown)


def _summary(request: Request) -> str | None:
    value = request.param("_summary")
    if value not in (None, "true", "false", "count"):
        raise InvalidRequest("_summary: true, false or count for Group", expression=["_summary"])
    return value


def _without_members(group: dict[str, Any]) -> dict[str, Any]:
    group.pop("member", None)
    meta = group.setdefault("meta", {})
    meta["tag"] = [*meta.get("tag", []), _SUBSETTED]
    return group


async def group_read(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/Group/{id}`` (``_summary=true``: without member)."""
    _check(request, _READ_PARAMS, "Group read")
    assert route.id
    summary = _summary(request)
    if summary == "count":
        raise InvalidRequest("_summary=count applies to a search", expression=["_summary"])
    members = access.patient is None and summary != "true"
    group = await cohort_group(env.view, route.id, with_members=members)
    if group is None:
        raise ResourceNotFound(f"Group/{route.id} is not known")
    if not members:
        group = _without_members(group)
    version = group["meta"]["versionId"]
    return Response(200, orjson.dumps(group), {"etag": f'W/"{version}"'})


def _matches_name(group: dict[str, Any], request: Request) -> bool:
    title = str(group.get("name", ""))
    for key, value in request.query:
        if key == "name" and not any(title.casefold().startswith(v.strip().casefold()) for v in value.split(",")):
            return False
        if key == "name:exact" and title not in value.split(","):
            return False
        if key == "name:contains" and not any(v.strip().casefold() in title.casefold() for v in value.split(",")):
            return False
    return True


def _matches_missing(group: dict[str, Any], request: Request) -> bool:
    """``name:missing``, ``_id:missing``, ``identifier:missing`` (true: the element is absent)."""
    for key, value in request.query:
        if key in _MISSING:
            if value not in ("true", "false"):
                raise InvalidRequest(f"{key}: true or false", expression=[key])
            element = key.split(":")[0].lstrip("_") if key != "_id:missing" else "id"
            if (value == "true") == bool(group.get(element)):
                return False
    return True


def _matches_token(group: dict[str, Any], request: Request) -> bool:
    for key, value in request.query:
        if key == "_id" and group["id"] not in [v.strip() for v in value.split(",")]:
            return False
        if key == "identifier":
            wanted = [v.strip() for v in value.split(",")]
            have = {(i.get("system", ""), i.get("value", "")) for i in group.get("identifier", [])}
            if not any(
                (w.partition("|")[0], w.partition("|")[2]) in have if "|" in w else any(v == w for _, v in have)
                for w in wanted
            ):
                return False
    return True


async def group_search(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/Group?…``: every cohort matching ``name``, ``_id`` and ``identifier``."""
    _check(request, _SEARCH_PARAMS, "Group search")
    summary = _summary(request)
    count_text = request.param("_count") or str(env.view.default_count)
    offset_text = request.param("_getpagesoffset") or "0"
    if not count_text.isdigit() or not offset_text.isdigit():
        raise InvalidRequest("_count and _getpagesoffset are non-negative integers", expression=["_count"])
    count, offset = min(int(count_text), env.view.max_count), int(offset_text)
    found = [
        g
        for g in await cohort_groups(env.view)
        if _matches_name(g, request) and _matches_token(g, request) and _matches_missing(g, request)
    ]
    links = [{"relation": "self", "url": link_url(request.base_url, "Group", request.query)}]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(found), "link": links}
    if summary != "count":
        kept = [(k, v) for k, v in request.query if k != "_getpagesoffset"]
        if offset + count < len(found):
            links.append(
                {"relation": "next",
                 "url": link_url(request.base_url, "Group", [*kept, ("_getpagesoffset", str(offset + count))])}
            )  # fmt: skip
        bundle["entry"] = [
            {
                "fullUrl": f"{request.base_url}/Group/{g['id']}",
                "resource": _without_members(g),
                "search": {"mode": "match"},
            }
            for g in found[offset : offset + count]
        ]
    return Response(200, orjson.dumps(bundle))


def _system_scope_on_group(access: AccessContext) -> bool:
    for scope in access.scopes:
        level, _, rest = scope.partition("/")
        if level == "system" and rest.split(".", 1)[0] in ("Group", "*"):
            return True
    return access.anonymous  # an endpoint run without authentication (development)


async def group_recompute(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``POST [base]/Group/{id}/$recompute``: compute the cohort now and return it (without member)."""
    assert route.id
    if not _system_scope_on_group(access) or access.patient is not None:
        raise Forbidden("recomputing a cohort needs a system/ scope on Group")
    cohorts = env.cohorts if env.cohorts is not None else Cohorts(env.view)
    if cohorts.definitions.cohort(route.id) is None:
        raise ResourceNotFound(f"Group/{route.id} is not a defined cohort")
    await cohorts.compute([route.id])
    group = await cohort_group(env.view, route.id, with_members=False)
    assert group is not None
    return Response(200, orjson.dumps(_without_members(group)))


async def recompute_definition(env: Env, request: Request, access: AccessContext, route: Route) -> Response:
    """``GET [base]/OperationDefinition/group-recompute``."""
    return Response(200, orjson.dumps(RECOMPUTE_OPERATION))


def cohort_handler(found: Route) -> Any:
    """The handler of a Group route (None: not a cohort route)."""
    if found.resource_type == "Group":
        return {"read": group_read, "search-type": group_search, "recompute": group_recompute}.get(found.interaction)
    if found.interaction == "operation-definition" and found.id == "group-recompute":
        return recompute_definition
    return None
