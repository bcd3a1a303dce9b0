"""Bearer token verification: signature, issuer, audience, expiry and not-before, with a small leeway.

The issuer is looked up from the (unverified) ``iss`` claim only to choose which configured key set to check
the signature against; nothing in the token is trusted before the signature, the ``iss`` and the ``aud``
have all been checked. Times are checked against an injectable clock so tests never wait.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
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


#: verified tokens remembered at once (a busy EPR integration reuses one token for an hour; clinicians' tokens
#: are one per session): past this, the least recently used is verified again when it next comes
TOKEN_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token whose signature, issuer and audience were checked: what is needed to accept it again."""

    trusted: TrustedIssuer
    claims: dict[str, Any]
    kid: str | None
    algorithm: str
    #: the issuer's key set generation it was verified against
    generation: int


class TokenVerifier:
    """Checks bearer JWTs against the configured issuers; returns the verified claims.

    A token that passed is remembered by its SHA-256 (never the token itself) in a bounded LRU, so a client
    that sends the same token on every request pays the signature check once. A remembered token is still
    checked on every request for what can change: its times (an expired token is refused, cached or not), and
    its key (looked up again in the issuer's key set, which refreshes on its TTL; when a refresh brings a
    different set, for a rotation or a revoked key, every token verified with the old one is forgotten). A
    token that differs in any byte has another hash, so a tampered token is never a hit.
    """

    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        *,
        leeway_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        cache_size: int = TOKEN_CACHE_SIZE,
    ) -> None:
        self._issuers = {i.issuer: i for i in issuers}
        self._leeway = leeway_seconds
        self._clock = clock
        self._cache_size = cache_size
        self._verified: OrderedDict[bytes, _Verified] = OrderedDict()
        #: how many verifications were answered from the cache (observable in tests and metrics)
        self.cache_hits = 0

    async def ensure_keys(self) -> None:
        """Load every trusted issuer's keys now (ServiceUnavailable naming the issuer when one cannot be)."""
        for issuer in self._issuers.values():
            try:
                await issuer.keys.ensure_loaded()
            except ServiceUnavailable as exc:
                raise ServiceUnavailable(f"issuer {issuer.issuer}: {exc}") from exc

    async def verify(self, token: str) -> tuple[TrustedIssuer, dict[str, Any]]:
        """The issuer and claims of a token that passes every check; NotAuthenticated otherwise."""
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        remembered = self._verified.get(digest)
        if remembered is not None:
            keys = remembered.trusted.keys
            # the key set refreshes on its TTL here as on a miss; a token whose key is gone is refused
            await keys.key(remembered.kid, remembered.algorithm)
            if keys.generation == remembered.generation:
                try:
                    self._check_times(remembered.claims)
                except NotAuthenticated:
                    del self._verified[digest]
                    raise
                self._verified.move_to_end(digest)
                self.cache_hits += 1
                return remembered.trusted, dict(remembered.claims)
            self._forget_generation(remembered.trusted, keys.generation)
        trusted, claims = await self._verify_signed(token)
        self._remember(digest, trusted, claims, token)
        return trusted, claims

    def _forget_generation(self, trusted: TrustedIssuer, generation: int) -> None:
        """The issuer's key set changed: forget every token of that issuer verified with an older set."""
        stale = [k for k, v in self._verified.items() if v.trusted is trusted and v.generation != generation]
        for key in stale:
            del self._verified[key]

    def _remember(self, digest: bytes, trusted: TrustedIssuer, claims: dict[str, Any], token: str) -> None:
        if self._cache_size <= 0:
            return
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        self._verified[digest] = _Verified(
            trusted=trusted,
            claims=dict(claims),
            kid=kid if isinstance(kid, str) else None,
            algorithm=str(header.get("alg")),
            generation=trusted.keys.generation,
        )
        self._verified.move_to_end(digest)
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)

    async def _verify_signed(self, token: str) -> tuple[TrustedIssuer, dict[str, Any]]:
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
