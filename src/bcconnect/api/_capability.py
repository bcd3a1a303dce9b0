"""The CapabilityStatement: built from the router's interactions and the view's capabilities, never by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from bcconnect import __version__
from bcconnect.api._router import OPERATIONS, TYPE_INTERACTIONS
from bcconnect.view import PERSON_MODEL_DOC, TypeCapability

_OPERATION_DEFINITIONS = {
    "everything": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
    "match": "http://hl7.org/fhir/OperationDefinition/Patient-match",
}
_AUDIT_PATIENT = "http://hl7.org/fhir/SearchParameter/AuditEvent-patient"
_COUNT = "http://hl7.org/fhir/SearchParameter/Resource-count"
_STARTED = datetime.now(UTC).isoformat(timespec="seconds")


def capability_statement(base_url: str, types: tuple[TypeCapability, ...]) -> bytes:
    """The server's CapabilityStatement as JSON bytes."""
    resources = []
    for cap in types:
        entry: dict[str, object] = {
            "type": cap.resource_type,
            "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
            "versioning": "versioned",
            "readHistory": True,
            "updateCreate": False,
            "conditionalCreate": False,
            # reads honour If-None-Match and If-Modified-Since (_handlers._not_modified)
            "conditionalRead": "full-support",
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
            "searchInclude": list(cap.includes),
            "searchRevInclude": list(cap.revincludes),
            "searchParam": [{"name": p.code, "definition": p.url, "type": p.type.value} for p in cap.search_params],
        }
        if cap.resource_type == "Patient":
            entry["documentation"] = PERSON_MODEL_DOC
        operations = [op for op in OPERATIONS.get(cap.resource_type, ()) if op in cap.operations]
        if operations:
            entry["operation"] = [{"name": op, "definition": _OPERATION_DEFINITIONS[op]} for op in operations]
        resources.append(entry)
    # the audit trail is searchable by patient only (see _handlers.audit_search), nothing else about it
    resources.append(
        {
            "type": "AuditEvent",
            "interaction": [{"code": "search-type"}],
            "searchParam": [
                {"name": "patient", "definition": _AUDIT_PATIENT, "type": "reference"},
                {"name": "_count", "definition": _COUNT, "type": "number"},
            ],
        }
    )
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": _STARTED,
        "publisher": "bcconnect",
        "kind": "instance",
        "software": {"name": "bcconnect", "version": __version__},
        "implementation": {"description": "Black Country shared care record (read-only)", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Read-only: create, update, patch and delete are refused with 405. "
                + PERSON_MODEL_DOC,
                "resource": resources,
            }
        ],
    }
    return orjson.dumps(statement)
