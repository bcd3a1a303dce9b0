"""The security gate behind the pages: the same tokens, grants, rate limits and audit trail as the FHIR endpoint.

A page reads what its ``resource_types`` name; the caller's SMART scopes must allow searching each of them (as
``GET [type]?…`` would on the FHIR endpoint). What the page then shows is screened by the view (objection,
sensitivity labels, restricted patients), exactly as on the FHIR endpoint, because pages read only through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from bcconnect.access import Interaction, SecurityGate, access_context, start_notes
from bcconnect.app._app import PageRequest
from bcconnect.view import AccessContext


class GatePageGuard:
    """:class:`~bcconnect.app.PageGuard` over the FHIR endpoint's :class:`~bcconnect.security.SecurityGate`."""

    def __init__(self, gate: SecurityGate, *, prefix: str = "/app") -> None:
        self.gate = gate
        self.prefix = "/" + prefix.strip("/")

    async def admit(
        self, request: PageRequest, authorization: str | None, resource_types: Sequence[str]
    ) -> AccessContext:
        """Authenticate (401/429), then require search permission on every type the page reads (403)."""
        start_notes(owner=request)
        principal = await self.gate.authenticate(authorization, remote_address=request.client)
        confined: set[str | None] = set()
        query = urlencode(list(request.query))
        for resource_type in resource_types or ("Patient",):
            admission = self.gate.admit_request(
                principal, resource_type=resource_type, interaction=Interaction.SEARCH, query=query
            )
            confined.add(admission.confined_to_patient)
        # a patient-confined token is confined on every type alike; keep that patient
        patient = next((p for p in confined if p is not None), None)
        return access_context(principal, confined_to=patient)

    async def record(
        self, request: PageRequest, access: AccessContext | None, status: int, patients: frozenset[str]
    ) -> None:
        """The page view's AuditEvent (a page is a query: restful interaction ``search-type``)."""
        await self.gate.record(
            principal=None,  # taken from the request's notes (kept even when the request was refused)
            method=request.method,
            path=f"{self.prefix}{request.path}",
            query=urlencode([(k, v) for k, v in request.query]),
            interaction="search-type",
            status=status,
            resource_type=None,
            patients=[f"Patient/{p}" for p in sorted(patients)],
            remote_address=request.client,
            owner=request,
        )
