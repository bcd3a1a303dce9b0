"""Bearer token verification: signature, issuer, audience, expiry and not-before, with a small leeway.

The issuer is looked up from the (unverified) ``iss`` claim only to choose which configured key set to check
the signature against; nothing in the token is trusted before the signature, the ``iss`` and the ``aud``
have all been checked. Times are checked against an injectable clock so tests never wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from bcconnect.errors import NotAuthenticated, ServiceUnavailable
from bcconnect.security._jwks import ALLOWED_ALGORITHMS, JwksCache

#: the message of the 401 for a request with no credentials at all (RFC 6750: no error code then)
NO_TOKEN_MESSAGE = "no access token: send Authorization: Bearer <token>"  # noqa: S105 - a message, not a secret
#: longest Authorization header value we look at (a real token is a few kB at most)
MAX_TOKEN_LENGTH = 16_384


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """One issuer we accept tokens from: its ``iss``, the ``aud`` it must name, and its keys."""

    issuer: str
    audience: str
    keys: JwksCache


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; NotAuthenticated when absent or malformed.

    >>> bearer_token("Bearer abc.def.ghi")
    'abc.def.ghi'
    """
    if not authorization:
        raise NotAuthenticated(NO_TOKEN_MESSAGE)
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("the Authorization header must use the Bearer scheme")
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise NotAuthenticated("the access token is not a JSON Web Token")
    return token


def _number(claims: dict[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise NotAuthenticated(f"the access token has no {name} claim")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NotAuthenticated(f"the access token's {name} claim is not a number")
    return float(value)


class TokenVerifier:
    """Checks bearer JWTs against the configured issuers; returns the verified claims."""

    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        *,
        leeway_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {i.issuer: i for i in issuers}
        self._leeway = leeway_seconds
        self._clock = clock

    async def ensure_keys(self) -> None:
        """Load every trusted issuer's keys now (ServiceUnavailable naming the issuer when one cannot be)."""
        for issuer in self._issuers.values():
            try:
                await issuer.keys.ensure_loaded()
            except ServiceUnavailable as exc:
                raise ServiceUnavailable(f"issuer {issuer.issuer}: {exc}") from exc

    async def verify(self, token: str) -> tuple[TrustedIssuer, dict[str, Any]]:
        """The issuer and claims of a token that passes every check; NotAuthenticated otherwise."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise NotAuthenticated("the access token is not a well-formed JSON Web Token") from exc
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise NotAuthenticated("the access token must be signed with RS256 or ES256")
        issuer_name = unverified.get("iss")
        trusted = self._issuers.get(issuer_name) if isinstance(issuer_name, str) else None
        if trusted is None:
            raise NotAuthenticated("the access token's issuer is not trusted by this server")
        kid = header.get("kid")
        key = await trusted.keys.key(kid if isinstance(kid, str) else None, algorithm)
        if key.algorithm_name != algorithm:
            raise NotAuthenticated("the access token's algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=trusted.audience,
                issuer=trusted.issuer,
                # times are checked below against our own clock
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": ["aud"]},
            )
        except jwt.InvalidSignatureError as exc:
            raise NotAuthenticated("the access token's signature is not valid") from exc
        except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError) as exc:
            raise NotAuthenticated("the access token is not meant for this server (audience)") from exc
        except jwt.InvalidIssuerError as exc:
            raise NotAuthenticated("the access token's issuer is not trusted by this server") from exc
        except jwt.PyJWTError as exc:
            raise NotAuthenticated("the access token cannot be verified") from exc
        self._check_times(claims)
        return trusted, claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        expires = _number(claims, "exp", required=True)
        not_before = _number(claims, "nbf", required=False)
        issued = _number(claims, "iat", required=False)
        assert expires is not None  # required=True
        if now > expires + self._leeway:
            raise NotAuthenticated("the access token has expired")
        if not_before is not None and now + self._leeway < not_before:
            raise NotAuthenticated("the access token is not valid yet")
        if issued is not None and now + self._leeway < issued:
            raise NotAuthenticated("the access token was issued in the future")
