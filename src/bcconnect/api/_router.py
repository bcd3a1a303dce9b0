"""Routing: which interaction a method and path below the FHIR base ask for. The only routing table.

The endpoint is read-only: GET and HEAD are routed; every other method is a 405 whatever the path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from bcconnect.errors import MethodNotAllowed, ResourceNotFound, Unsupported

#: FHIR id syntax (R4 §2.1.28.0.1 id datatype)
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")
#: instance and type interactions we route (the CapabilityStatement lists exactly these)
TYPE_INTERACTIONS = ("read", "vread", "history-instance", "search-type")
#: operations by resource type
OPERATIONS = {
    "Patient": ("everything", "match", "export"),
    "Group": ("export",),
    "ServiceRequest": ("triage-worklist",),
    "EpisodeOfCare": ("waiting-list",),
}
#: operations invoked on the type (``Patient/$match``) rather than an instance, with the method they take
TYPE_OPERATIONS = {
    ("Patient", "$match"): "match",
    ("ServiceRequest", "$triage-worklist"): "triage-worklist",
    ("EpisodeOfCare", "$waiting-list"): "waiting-list",
}
_TYPE_OPERATION_METHOD = {"match": "POST", "triage-worklist": "GET", "waiting-list": "GET"}


@dataclass(frozen=True, slots=True)
class Route:
    """The interaction and its path arguments."""

    interaction: str
    resource_type: str | None = None
    id: str | None = None
    version: str | None = None


def _check_id(resource_type: str, value: str) -> str:
    if not _ID.match(value):
        raise ResourceNotFound(f"{value!r} is not a valid id, so there is no {resource_type} with it")
    return value


#: Bulk Data (``$export``): the methods each of its routes takes
_BULK_METHODS = {
    "export": ("GET", "POST"),
    "export-status": ("GET", "DELETE"),
    "export-file": ("GET",),
}


def _bulk_route(method: str, parts: list[str]) -> Route | None:
    """The Bulk Data routes: kick-off at system, Patient and Group level, the status URL and the files."""
    found: Route | None = None
    if parts == ["$export"]:
        found = Route("export")
    elif parts == ["Patient", "$export"]:
        found = Route("export", "Patient")
    elif len(parts) == 3 and parts[0] == "Group" and parts[2] == "$export":
        found = Route("export", "Group", _check_id("Group", parts[1]))
    elif len(parts) == 2 and parts[0] == "$export-status":
        found = Route("export-status", None, _check_id("export", parts[1]))
    elif len(parts) == 3 and parts[0] == "$export-file":
        found = Route("export-file", None, _check_id("export", parts[1]), parts[2])
    if found is None:
        return None
    allowed = _BULK_METHODS[found.interaction]
    if method not in allowed and not (method == "HEAD" and "GET" in allowed):
        raise MethodNotAllowed(
            f"{'/'.join(parts)} takes {' or '.join(allowed)}",
            allow=(*allowed, "HEAD") if "GET" in allowed else allowed,
        )
    return found


#: routes remembered (a request is routed by the app and by both security hooks; a refusal is not remembered)
_ROUTES_KEPT = 2048


@lru_cache(maxsize=_ROUTES_KEPT)
def route(method: str, path: str) -> Route:
    """The route for ``method path`` (path relative to the FHIR base, without the query)."""
    parts = [p for p in path.strip("/").split("/") if p]
    bulk = _bulk_route(method, parts)
    if bulk is not None:
        return bulk
    if len(parts) == 2 and (parts[0], parts[1]) in TYPE_OPERATIONS:
        operation = TYPE_OPERATIONS[(parts[0], parts[1])]
        wanted = _TYPE_OPERATION_METHOD[operation]
        # $match takes a Parameters resource, so FHIR invokes it with POST; the triage operations take a query
        if method != wanted and not (wanted == "GET" and method == "HEAD"):
            how = "with POST and a Parameters resource" if wanted == "POST" else "with GET"
            raise MethodNotAllowed(
                f"{parts[0]}/{parts[1]} is invoked {how}", allow=("GET", "HEAD") if wanted == "GET" else (wanted,)
            )
        return Route(operation, parts[0])
    if len(parts) == 3 and parts[0] == "Group" and parts[2] == "$recompute":
        # recomputing a cohort changes derived data only (the record stays read-only): an operation, with POST
        if method != "POST":
            raise MethodNotAllowed("Group/{id}/$recompute is invoked with POST", allow=("POST",))
        return Route("recompute", "Group", _check_id("Group", parts[1]))
    if method not in ("GET", "HEAD"):
        raise MethodNotAllowed(f"{method} is not allowed: this FHIR endpoint is read-only")
    if parts == ["metadata"]:
        return Route("capabilities")
    if parts == [".well-known", "smart-configuration"]:
        return Route("smart-configuration")
    if len(parts) == 2 and parts[0] == "OperationDefinition":
        return Route("operation-definition", "OperationDefinition", _check_id("OperationDefinition", parts[1]))
    if not parts:
        raise Unsupported("system-level search is not supported; search one resource type")
    rtype = parts[0]
    if not _TYPE.match(rtype):
        if rtype.startswith("$") or rtype == "_history":
            raise Unsupported(f"{rtype} is not supported at the system level")
        raise ResourceNotFound(f"no resource type {rtype!r} here")
    if len(parts) == 1:
        return Route("search-type", rtype)
    second = parts[1]
    if second.startswith("$") or second in ("_history", "_search"):
        raise Unsupported(f"{rtype}/{second} is not supported")
    rid = _check_id(rtype, second)
    if len(parts) == 2:
        return Route("read", rtype, rid)
    third = parts[2]
    if third == "_history" and len(parts) == 3:
        return Route("history-instance", rtype, rid)
    if third == "_history" and len(parts) == 4:
        return Route("vread", rtype, rid, parts[3])
    if third.startswith("$") and len(parts) == 3:
        operation = third[1:]
        if operation in OPERATIONS.get(rtype, ()) and (rtype, third) not in TYPE_OPERATIONS:
            return Route(operation, rtype, rid)
        raise Unsupported(f"operation ${operation} is not supported on {rtype}")
    raise ResourceNotFound(f"nothing at {path!r}")
