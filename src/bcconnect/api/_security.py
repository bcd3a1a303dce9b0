"""The security layer plugged into the app's two seams: ``authenticate`` and ``on_request_complete``.

::

    gate = SecurityGate.from_settings(settings, store, allow_no_auth=flag)
    authenticate, on_complete = security_hooks(gate)
    app = create_app(settings, view, authenticate=authenticate, on_request_complete=on_complete)

``authenticate`` verifies the bearer token, rate-limits, checks the query limits and authorises the routed
interaction, then hands the view an :class:`AccessContext`. ``on_request_complete`` writes the AuditEvent
(every request, refused ones too) before the app sends the response.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache
from urllib.parse import urlencode

from bcconnect.access import Interaction, Principal, SecurityGate, access_context, start_notes
from bcconnect.api._app import Authenticate, RequestCompleteHook
from bcconnect.api._http import AUDIT_DETAIL, Request
from bcconnect.api._router import route
from bcconnect.errors import Forbidden, RequestError
from bcconnect.triage import TRIAGE_READS
from bcconnect.view import AccessContext, registry

#: the app's interaction names → what a SMART scope must allow
_INTERACTIONS = {
    "read": Interaction.READ,
    "vread": Interaction.VREAD,
    "history-instance": Interaction.HISTORY,
    "search-type": Interaction.SEARCH,
    "everything": Interaction.OPERATION,
}
#: interactions anyone may call without a token
PUBLIC_INTERACTIONS = frozenset({"capabilities", "smart-configuration", "operation-definition"})
#: AuditEvent restful-interaction codes for the app's interaction names
_AUDIT_INTERACTIONS = {
    "everything": "operation",
    "match": "operation",
    "triage-worklist": "operation",
    "waiting-list": "operation",
    "recompute": "operation",
    "operation-definition": "read",
    "smart-configuration": "capabilities",
    "export": "operation",
    "export-status": "read",
    "export-file": "read",
}
#: Bulk Data: kick-off, status and files, all for system/ grants only (see :func:`bulk_access`)
_BULK_INTERACTIONS = frozenset({"export", "export-status", "export-file"})


#: the triage operations read every type of the record: the caller needs search permission on each
_TRIAGE_OPERATIONS = frozenset({"triage-worklist", "waiting-list"})


def bulk_access(gate: SecurityGate, principal: Principal, request: Request) -> AccessContext:
    """The grant a Bulk Data request runs with: the types the token's ``system/`` scopes read.

    A bulk export is the population's data, so ``patient/`` and ``user/`` scopes grant none of it (403); the
    purpose of use and the query limits are checked as for every request.
    """
    served = registry().resource_types
    if principal.issuer == "none":  # serving without authentication (development): the open grant
        readable = principal.scopes.readable_types(served)
    else:
        readable = frozenset(
            t
            for t in served
            for s in principal.scopes.scopes
            if s.context.value == "system" and (s.allows(t, Interaction.READ) or s.allows(t, Interaction.SEARCH))
        )
    if not readable:
        raise Forbidden("Bulk Data export needs system/ scopes (system/*.read or system/<Type>.read)")
    gate.admit_request(
        principal, resource_type=min(readable), interaction=Interaction.SEARCH, query=_query_text(request)
    )
    return replace(access_context(principal, confined_to=None), readable_types=readable)


def _query_text(request: Request) -> str:
    return _encoded(request.query)


@lru_cache(maxsize=1024)
def _encoded(query: tuple[tuple[str, str], ...]) -> str:
    # a request's query is checked against the limits and then written to its AuditEvent: encoded once
    return urlencode(query)


_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PATIENT_PARAMS = frozenset({"patient", "subject", "subject:Patient", "patient:Patient", "beneficiary"})


def requested_patients(request: Request, resource_type: str | None) -> set[str]:
    """Patient ids a request names: ``Patient/<id>`` paths and ``patient``/``subject``/``_id`` values."""
    named: set[str] = set()
    parts = request.path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "Patient" and _FHIR_ID.fullmatch(parts[1]):
        named.add(parts[1])
    for name, value in request.query:
        if name in _PATIENT_PARAMS or (name == "_id" and resource_type == "Patient"):
            for item in value.split(","):
                ident = item.strip().rsplit("/", 1)[-1]
                if _FHIR_ID.fullmatch(ident):
                    named.add(ident)
    return named


def security_hooks(gate: SecurityGate) -> tuple[Authenticate, RequestCompleteHook]:
    """The ``authenticate`` and ``on_request_complete`` callables for :func:`create_app`."""

    async def authenticate(request: Request) -> AccessContext:
        start_notes(owner=request)
        AUDIT_DETAIL.set(None)
        try:
            found = route(request.method, request.path)
        except RequestError:
            # unroutable (404/405): still establish who asks, for the audit record; the app then refuses
            principal = await gate.authenticate(request.header("authorization"), remote_address=request.client)
            return access_context(principal, confined_to=None)
        if found.interaction in PUBLIC_INTERACTIONS:
            # the CapabilityStatement and SMART discovery are public (clients read them before they have a token)
            return AccessContext(anonymous=True)
        principal = await gate.authenticate(request.header("authorization"), remote_address=request.client)
        if found.interaction in _BULK_INTERACTIONS:
            return bulk_access(gate, principal, request)
        if found.interaction in _TRIAGE_OPERATIONS:
            confined = {
                gate.admit_request(
                    principal, resource_type=t, interaction=Interaction.SEARCH, query=_query_text(request)
                ).confined_to_patient
                for t in TRIAGE_READS
            }
            return access_context(principal, confined_to=next((p for p in confined if p), None))
        admission = gate.admit_request(
            principal,
            resource_type=found.resource_type or "",
            # operations added later ($match …) need the search permission, like $everything
            interaction=_INTERACTIONS.get(found.interaction, Interaction.OPERATION),
            query=_query_text(request),
        )
        return access_context(principal, confined_to=admission.confined_to_patient)

    async def on_request_complete(
        request: Request, access: AccessContext | None, status: int, patients: frozenset[str]
    ) -> None:
        try:
            found = route(request.method, request.path)
            interaction = _AUDIT_INTERACTIONS.get(found.interaction, found.interaction)
            resource_type = found.resource_type
        except RequestError:
            interaction, resource_type = "operation", None
        await gate.record(
            principal=None,  # the gate takes the authenticated caller from the request's notes
            method=request.method,
            path=request.path,
            query=_query_text(request),
            interaction=interaction,
            status=status,
            resource_type=resource_type,
            # the patients answered with, and those the request names (so a refusal names them too)
            patients=[f"Patient/{p}" for p in {*patients, *requested_patients(request, resource_type)}],
            remote_address=request.client,
            owner=request,
            request_id=request.header("x-request-id"),
            detail=AUDIT_DETAIL.get() if status < 400 else None,
        )

    return authenticate, on_request_complete
