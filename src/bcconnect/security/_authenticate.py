"""From an ``Authorization`` header to a :class:`Principal`, and the authorisation checks on a request.

Failures split the way RFC 6750 splits them: anything wrong with the token itself (missing, malformed,
forged, expired, wrong issuer or audience, no identity claims) is 401 ``invalid_token``; a good token that
does not allow this request (scope, purpose of use, patient) is 403 ``insufficient_scope``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import structlog

from bcconnect.config import AuthMode, AuthSettings
from bcconnect.errors import ConfigError, Forbidden, NotAuthenticated, RequestError  # noqa: F401 - doctest
from bcconnect.security._jwks import FileKeySource, JwksCache, KeySource, UrlKeySource
from bcconnect.security._jwt import NO_TOKEN_MESSAGE, TokenVerifier, TrustedIssuer, bearer_token
from bcconnect.security._principal import DIRECT_CARE, Principal, principal_from_claims
from bcconnect.security._scopes import Interaction, ScopeSet

log = structlog.get_logger("bcconnect.security")

#: callers kept per process, by token (the oldest first out); as many as the verifier keeps verified tokens
PRINCIPALS_KEPT = 4096

#: who a request is when authentication is switched off (development only)
ANONYMOUS_DEVELOPER = Principal(
    user="unauthenticated",
    role="unauthenticated",
    organisation="UNKNOWN",
    purpose=DIRECT_CARE,
    scopes=ScopeSet.parse("system/*.rs"),
    issuer="none",
)


class Authenticator:
    """Verifies bearer tokens against the trusted issuers (or, in ``mode = none``, lets everyone in)."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self._verifier = verifier
        #: token -> (the claims it was read from, issuer, the caller): the caller read once per token
        self._principals: OrderedDict[str, tuple[dict[str, Any], str, Principal]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """False only when authentication was switched off explicitly."""
        return self._verifier is not None

    async def keys_ready(self) -> None:
        """Raise ServiceUnavailable unless every trusted issuer's keys are loaded (nothing to load in no-auth)."""
        if self._verifier is not None:
            await self._verifier.ensure_keys()

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller of a request with this ``Authorization`` header; NotAuthenticated (401) otherwise."""
        if self._verifier is None:
            return ANONYMOUS_DEVELOPER
        token = bearer_token(authorization)
        # verified every time (expiry, key rotation: the verifier's own cache answers that); only reading the
        # caller out of the claims is skipped when the very same claims from the same issuer were read before
        trusted, claims = await self._verifier.verify(token)
        known = self._principals.get(token)
        if known is not None and known[1] == trusted.issuer and known[0] == claims:
            return known[2]
        principal = principal_from_claims(claims, issuer=trusted.issuer)
        self._principals[token] = (claims, trusted.issuer, principal)
        if len(self._principals) > PRINCIPALS_KEPT:
            self._principals.popitem(last=False)
        return principal


def build_authenticator(
    settings: AuthSettings,
    *,
    root: Path,
    allow_no_auth: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    wall_clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> Authenticator:
    """The authenticator the configuration describes; call once at start-up.

    ``mode = "none"`` is refused unless the caller also passes ``allow_no_auth=True`` (a command-line flag),
    and logs a warning every time it is built.
    """
    if settings.mode is AuthMode.NONE:
        if not allow_no_auth:
            raise ConfigError(
                "authentication is off; start with the explicit no-auth flag to allow this", key="auth.mode"
            )
        log.warning("auth_disabled", reason="auth.mode is none", effect="every caller is anonymous")
        return Authenticator(None)
    if not settings.issuers:
        raise ConfigError("no trusted token issuers: add at least one [[auth.issuers]]", key="auth.issuers")
    trusted: list[TrustedIssuer] = []
    for index, entry in enumerate(settings.issuers):
        source: KeySource
        if entry.jwks_file and not entry.jwks_url:
            path = Path(entry.jwks_file)
            source = FileKeySource(path if path.is_absolute() else root / path)
        elif entry.jwks_url and not entry.jwks_file:
            source = UrlKeySource(entry.jwks_url, timeout=settings.jwks_timeout_seconds, transport=transport)
        else:
            raise ConfigError("give exactly one of jwks_file and jwks_url", key=f"auth.issuers[{index}]")
        cache = JwksCache(
            source,
            ttl_seconds=settings.jwks_cache_seconds,
            min_refetch_seconds=settings.jwks_min_refetch_seconds,
            clock=monotonic,
        )
        trusted.append(TrustedIssuer(issuer=entry.issuer, audience=entry.audience, keys=cache))
    return Authenticator(TokenVerifier(trusted, leeway_seconds=settings.leeway_seconds, clock=wall_clock))


def authorise(principal: Principal, *, resource_type: str, interaction: Interaction) -> str | None:
    """Check that ``principal`` may perform ``interaction`` on ``resource_type``; Forbidden (403) if not.

    Returns the Patient id the call must be confined to when the grant is a ``patient/`` scope (the view
    applies the confinement), else None.
    """
    if principal.purpose != DIRECT_CARE:
        raise Forbidden(f"purpose of use {principal.purpose or '(none)'!r} is not allowed: direct care only")
    if not principal.scopes.allows(resource_type, interaction):
        raise Forbidden(f"the access token's scopes do not allow {interaction.value} on {resource_type}")
    if principal.scopes.patient_only(resource_type, interaction):
        if principal.patient is None:
            raise Forbidden("a patient-level scope needs the token to name its patient")
        return principal.patient
    return None


def www_authenticate(error: RequestError | None = None, *, realm: str = "bcconnect") -> str:
    """The ``WWW-Authenticate`` header value for a 401 (or 403) answer, per RFC 6750.

    >>> www_authenticate(NotAuthenticated(NO_TOKEN_MESSAGE))  # no credentials at all: no error code
    'Bearer realm="bcconnect"'
    >>> www_authenticate(NotAuthenticated('the access token has expired'))
    'Bearer realm="bcconnect", error="invalid_token", error_description="the access token has expired"'
    """
    if error is None or str(error) == NO_TOKEN_MESSAGE:
        return f'Bearer realm="{realm}"'
    code = "insufficient_scope" if isinstance(error, Forbidden) else "invalid_token"
    # the description is a header value: keep it to printable ASCII without quotes or backslashes
    description = "".join(c for c in str(error) if 32 <= ord(c) < 127 and c not in '"\\')[:200]
    return f'Bearer realm="{realm}", error="{code}", error_description="{description}"'
