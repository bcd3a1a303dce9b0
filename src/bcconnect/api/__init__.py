"""The read-only FHIR R4 REST endpoint: an ASGI app with no web framework.

::

    app = create_app(settings)                 # opens the store in the ASGI lifespan
    app = create_app(settings, view)           # or serve a view you opened
    await serve(settings)                      # uvicorn on settings.api.host:port

Interactions: ``metadata``, read, vread, instance ``_history``, type search (snapshot-consistent paging with
opaque ``_page_token`` links) and ``Patient/{id}/$everything``; every write method is a 405. Errors become an
OperationOutcome and a status in ``_outcome`` only.

Seams for the security layer, both passed to :func:`create_app` / :func:`serve`:

``authenticate(request: Request) -> Awaitable[AccessContext]``
    Called for every routed request before its handler; the returned :class:`~bcconnect.view.AccessContext`
    reaches every view call. Raise ``NotAuthenticated`` (401) or ``Forbidden`` (403) to refuse. Default:
    :func:`open_access` (the anonymous open context).
``on_request_complete(request, access, status, patients) -> Awaitable[None]``
    Called once per request after the handler, *before* the response is sent (an audit trail that fails
    fails the request): ``access`` is None when authentication failed, ``patients`` the Patient ids whose
    data the response carries. Default: no-op.
"""

from bcconnect.api._app import (
    Authenticate,
    FhirApp,
    RequestCompleteHook,
    create_app,
    ignore_completion,
    open_access,
)
from bcconnect.api._http import Request, Response
from bcconnect.api._security import security_hooks
from bcconnect.api._serve import make_server, serve
from bcconnect.view import OPEN_ACCESS, AccessContext

__all__ = [
    "OPEN_ACCESS",
    "AccessContext",
    "Authenticate",
    "FhirApp",
    "Request",
    "RequestCompleteHook",
    "Response",
    "create_app",
    "ignore_completion",
    "make_server",
    "open_access",
    "security_hooks",
    "serve",
]
