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

from urllib.parse import urlencode

from bcconnect.api._app import Authenticate, RequestCompleteHook
from bcconnect.api._http import Request
from bcconnect.api._router import route
from bcconnect.errors import RequestError
from bcconnect.security import Interaction, Principal, SecurityGate, start_notes
from bcconnect.view import AccessContext

#: the app's interaction names → what a SMART scope must allow
_INTERACTIONS = {
    "read": Interaction.READ,
    "vread": Interaction.VREAD,
    "history-instance": Interaction.HISTORY,
    "search-type": Interaction.SEARCH,
    "everything": Interaction.OPERATION,
}
#: AuditEvent restful-interaction codes for the app's interaction names
_AUDIT_INTERACTIONS = {"everything": "operation", "match": "operation"}


def access_context(principal: Principal, *, confined_to: str | None) -> AccessContext:
    """The view's view of a verified caller."""
    return AccessContext(
        user=principal.user,
        role=principal.role,
        organisation=principal.organisation,
        purpose=principal.purpose,
        scopes=frozenset(principal.scopes.raw),
        patient=confined_to,
        client_id=principal.client_id,
        allow_sensitive=principal.allow_sensitive,
        anonymous=principal.issuer == "none",
    )


def _query_text(request: Request) -> str:
    return urlencode(list(request.query))


def security_hooks(gate: SecurityGate) -> tuple[Authenticate, RequestCompleteHook]:
    """The ``authenticate`` and ``on_request_complete`` callables for :func:`create_app`."""

    async def authenticate(request: Request) -> AccessContext:
        start_notes(owner=request)
        found = route(request.method, request.path)  # the app routed it already; this cannot fail now
        if found.interaction == "capabilities":
            # the CapabilityStatement is public (SMART clients read it before they have a token)
            return AccessContext(anonymous=True)
        principal = await gate.authenticate(request.header("authorization"), remote_address=request.client)
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
            patients=[f"Patient/{p}" for p in patients],
            remote_address=request.client,
            owner=request,
            request_id=request.header("x-request-id"),
        )

    return authenticate, on_request_complete
