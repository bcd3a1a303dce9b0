"""Who is asking, as every view call and API handler sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AccessContext:
    """The caller of one request: produced by the API's ``authenticate`` hook, passed to every view call.

    The default (:data:`OPEN_ACCESS`) is an anonymous context for an endpoint run without authentication
    (development and tests); the security layer builds real ones from verified tokens.
    """

    user: str | None = None
    role: str | None = None
    organisation: str | None = None
    purpose: str | None = None
    scopes: frozenset[str] = frozenset()
    #: the Patient id a patient-scoped caller is limited to
    patient: str | None = None
    client_id: str | None = None
    #: whether resources with sensitive security labels may be returned
    allow_sensitive: bool = False
    #: True for the unauthenticated open context
    anonymous: bool = False
    #: the resource types the caller's scopes may read; every resource a response carries (matches, includes,
    #: ``$everything``, history) is of one of them. None: every type (the open context)
    readable_types: frozenset[str] | None = None


#: the context of an endpoint run without authentication
OPEN_ACCESS = AccessContext(user="anonymous", purpose="directcare", anonymous=True, allow_sensitive=True)
