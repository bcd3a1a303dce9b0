"""A verified caller as the view sees it."""

from __future__ import annotations

from functools import lru_cache

from bcconnect.security import Principal
from bcconnect.view import AccessContext, registry

#: distinct (caller, confinement) pairs whose context is kept; a context is a few hundred bytes
_CONTEXTS_KEPT = 4096


@lru_cache(maxsize=_CONTEXTS_KEPT)
def access_context(principal: Principal, *, confined_to: str | None) -> AccessContext:
    """The view's :class:`AccessContext` for ``principal``; ``confined_to`` is the one Patient a token is held to.

    The readable types come from the token's scopes, so resources a response carries (included ones, the
    record in ``$everything``, a page's context) are held to the same grant as the query itself.

    Both are immutable and the context is a function of them alone, so it is built once per caller and
    confinement and then shared: a verified token's requests no longer re-derive its readable types from
    every served type against every scope (about 30 × scopes checks) each time.
    """
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
        readable_types=principal.scopes.readable_types(registry().resource_types),
    )
