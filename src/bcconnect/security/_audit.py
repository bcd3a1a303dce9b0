"""AuditEvent records for every request (UK Core AuditEvent, IHE BALP "RESTful" style).

:func:`build_audit_event` is pure: it turns an :class:`AuditRecord` (what the API knows when a request is
done) into AuditEvent JSON. It answers "who looked at this person's record, when, and why": the requesting
user with their role, the organisation, the purpose of use, the client, the patient(s), the query and the
outcome. Refused requests are recorded too, with whatever identity was established.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bcconnect.fhir.constants import (
    ODS_ORGANIZATION_SYSTEM,
    SDS_ROLE_PROFILE_SYSTEM,
    SDS_USER_SYSTEM,
    UKCORE_PROFILE_BASE,
    V3_ACT_REASON_SYSTEM,
)

AUDIT_EVENT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
SECURITY_ROLE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
AUDIT_SOURCE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/security-source-type"
AUDIT_ENTITY_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
#: IHE Basic Audit Log Patterns entity types (``XrequestId``: the request's correlation id)
BALP_ENTITY_TYPE_SYSTEM = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
OBJECT_ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/object-role"
PURPOSE_TEXT_SYSTEM = "https://bcconnect.nhs.uk/CodeSystem/purpose-of-use"

#: FHIR restful-interaction codes we audit, with the AuditEvent.action each implies (BALP: query = E)
_ACTIONS = {
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "history-type": "E",
    "search-type": "E",
    "search-system": "E",
    "operation": "E",
    "capabilities": "R",
}


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What happened in one request, as the API knows it once the answer is decided."""

    recorded: datetime
    #: FHIR restful-interaction code: read, vread, search-type, operation, history-instance, capabilities …
    interaction: str
    status: int
    method: str
    path: str
    query: str = ""
    resource_type: str | None = None
    user: str | None = None
    role: str | None = None
    organisation: str | None = None
    purpose: str | None = None
    client_id: str | None = None
    remote_address: str | None = None
    #: references of the patients the request touched ("Patient/<id>"), asked for or returned
    patients: tuple[str, ...] = ()
    #: why it was refused or what was withheld, without clinical detail ("forbidden", "objection" …)
    detail: str | None = None
    request_id: str | None = None


def outcome_code(status: int) -> str:
    """AuditEvent.outcome for an HTTP status: 0 success, 4 minor failure (refused), 8 serious (our fault).

    >>> [outcome_code(s) for s in (200, 404, 503)]
    ['0', '4', '8']
    """
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _agents(record: AuditRecord) -> list[dict[str, Any]]:
    user: dict[str, Any] = {
        "type": {"coding": [{"system": SECURITY_ROLE_TYPE_SYSTEM, "code": "humanuser"}]},
        "requestor": True,
        "who": (
            {"identifier": {"system": SDS_USER_SYSTEM, "value": record.user}}
            if record.user
            else {"display": "unauthenticated"}
        ),
    }
    if record.role:
        user["role"] = [{"coding": [{"system": SDS_ROLE_PROFILE_SYSTEM, "code": record.role}]}]
    if record.remote_address:
        user["network"] = {"address": record.remote_address, "type": "2"}
    agents = [user]
    if record.organisation:
        agents.append(
            {
                "type": {"coding": [{"system": SECURITY_ROLE_TYPE_SYSTEM, "code": "dataprocessor"}]},
                "requestor": False,
                "who": {"identifier": {"system": ODS_ORGANIZATION_SYSTEM, "value": record.organisation}},
            }
        )
    if record.client_id:
        agents.append(
            {
                "type": {"coding": [{"system": SECURITY_ROLE_TYPE_SYSTEM, "code": "application"}]},
                "requestor": False,
                "who": {"display": record.client_id},
            }
        )
    return agents


def build_audit_event(record: AuditRecord, *, event_id: str) -> dict[str, Any]:
    """The AuditEvent resource for one request (JSON-ready)."""
    interaction = record.interaction if record.interaction in _ACTIONS else "operation"
    entities: list[dict[str, Any]] = [
        {
            "what": {"reference": ref},
            "type": {"system": AUDIT_ENTITY_TYPE_SYSTEM, "code": "1", "display": "Person"},
            "role": {"system": OBJECT_ROLE_SYSTEM, "code": "1", "display": "Patient"},
        }
        for ref in record.patients
    ]
    query = f"{record.method} {record.path}" + (f"?{record.query}" if record.query else "")
    entities.append(
        {
            "type": {"system": AUDIT_ENTITY_TYPE_SYSTEM, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE_SYSTEM, "code": "24", "display": "Query"},
            "query": base64.b64encode(query.encode("utf-8")).decode("ascii"),
            **({"description": record.resource_type} if record.resource_type else {}),
        }
    )
    if record.request_id:
        # IHE BALP: the transaction's X-Request-Id, so an audit entry joins up with the logs of its request
        entities.append(
            {
                "what": {"identifier": {"value": record.request_id}},
                "type": {"system": BALP_ENTITY_TYPE_SYSTEM, "code": "XrequestId", "display": "X-Request-Id"},
            }
        )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "meta": {"profile": [UKCORE_PROFILE_BASE + "AuditEvent"]},
        "type": {"system": AUDIT_EVENT_TYPE_SYSTEM, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": RESTFUL_INTERACTION_SYSTEM, "code": interaction}],
        "action": _ACTIONS[interaction],
        "recorded": _instant(record.recorded),
        "outcome": outcome_code(record.status),
        "outcomeDesc": f"HTTP {record.status}" + (f": {record.detail}" if record.detail else ""),
        "agent": _agents(record),
        "source": {
            "observer": {"display": "bcconnect FHIR endpoint"},
            "type": [{"system": AUDIT_SOURCE_TYPE_SYSTEM, "code": "4", "display": "Application Server"}],
        },
        "entity": entities,
    }
    if record.purpose:
        # direct care is v3 ActReason TREAT; the claim's own wording is kept beside it
        codings = [{"system": PURPOSE_TEXT_SYSTEM, "code": record.purpose}]
        if record.purpose == "directcare":
            codings.insert(0, {"system": V3_ACT_REASON_SYSTEM, "code": "TREAT", "display": "treatment"})
        event["purposeOfEvent"] = [{"coding": codings}]
    return event
