"""The AuditEvent built for a request answers who, which organisation and role, why, whom, what and outcome."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from bcconnect.fhir.constants import ODS_ORGANIZATION_SYSTEM, SDS_USER_SYSTEM
from bcconnect.security import AuditRecord, build_audit_event

WHEN = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)


def test_an_allowed_search_is_recorded_in_full() -> None:
    """User, role, organisation, client, purpose, patients, query and success are all present."""
    record = AuditRecord(
        recorded=WHEN,
        interaction="search-type",
        status=200,
        method="GET",
        path="/fhir/Observation",
        query="patient=p1&code=1234",
        resource_type="Observation",
        user="912345678901",
        role="R8000",
        organisation="RL4",
        purpose="directcare",
        client_id="ward-app",
        patients=("Patient/p1",),
    )
    event = build_audit_event(record, event_id="e1")
    assert event["resourceType"] == "AuditEvent"
    assert event["recorded"] == "2026-11-22T20:00:00.000Z"
    assert (event["action"], event["outcome"]) == ("E", "0")
    user = event["agent"][0]
    assert user["who"]["identifier"] == {"system": SDS_USER_SYSTEM, "value": "912345678901"}
    assert user["requestor"] is True
    assert event["agent"][1]["who"]["identifier"] == {"system": ODS_ORGANIZATION_SYSTEM, "value": "RL4"}
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert event["entity"][0]["what"] == {"reference": "Patient/p1"}
    query = base64.b64decode(event["entity"][-1]["query"]).decode()
    assert query == "GET /fhir/Observation?patient=p1&code=1234"


def test_a_refused_anonymous_request_is_recorded_as_a_failure() -> None:
    """No identity: the agent says unauthenticated; 401 is a minor failure with its reason."""
    event = build_audit_event(
        AuditRecord(
            recorded=WHEN,
            interaction="read",
            status=401,
            method="GET",
            path="/fhir/Patient/p1",
            patients=("Patient/p1",),
            detail="not-authenticated",
        ),
        event_id="e2",
    )
    assert event["agent"][0]["who"] == {"display": "unauthenticated"}
    assert event["outcome"] == "4"
    assert event["outcomeDesc"] == "HTTP 401: not-authenticated"
    assert "purposeOfEvent" not in event


def test_an_unknown_interaction_is_recorded_as_an_operation() -> None:
    """Anything the API labels oddly still yields a valid restful-interaction code."""
    event = build_audit_event(
        AuditRecord(recorded=WHEN, interaction="weird", status=500, method="GET", path="/fhir/x"), event_id="e3"
    )
    assert event["subtype"][0]["code"] == "operation"
    assert event["outcome"] == "8"
