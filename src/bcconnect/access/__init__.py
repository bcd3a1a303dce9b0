"""The caller's side of the screen, for the front ends (the FHIR endpoint and the pages).

``api`` and ``app`` reach data only through ``view``; *who* is asking is the security gate's business (bearer
token, SMART scopes, rate limits, query limits, the request deadline, the AuditEvent). This small facade is the
one door from a front end to that gate, so the import contract can say "api and app never import security or
store": a front end authenticates and records through the :class:`SecurityGate` it is handed, and turns the
verified caller into the view's :class:`~bcconnect.view.AccessContext` with :func:`access_context` (one
definition for the endpoint and the pages, so both screen by the same grant).

::

    principal = await gate.authenticate(request.header("authorization"), remote_address=request.client)
    admission = gate.admit_request(principal, resource_type="Observation", interaction=Interaction.SEARCH, query=q)
    access = access_context(principal, confined_to=admission.confined_to_patient)
"""

from bcconnect.access._context import access_context
from bcconnect.security import (
    Interaction,
    Principal,
    SecurityGate,
    request_deadline,
    start_notes,
    www_authenticate,
)

__all__ = [
    "Interaction",
    "Principal",
    "SecurityGate",
    "access_context",
    "request_deadline",
    "start_notes",
    "www_authenticate",
]
