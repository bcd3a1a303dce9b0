"""JSON Web Key Sets from a file or a URL, cached, with one refetch when an unknown ``kid`` turns up.

Issuers rotate keys by publishing the new key before signing with it, so a token whose ``kid`` we have not
seen is the normal sign of a rotation: we fetch the set again, once, and at most once per
``min_refetch_seconds`` so a stream of forged ``kid`` values cannot turn us into a fetch amplifier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import anyio
import httpx
import jwt
import structlog

from bcconnect.errors import NotAuthenticated, ServiceUnavailable

log = structlog.get_logger("bcconnect.security")

#: the signature algorithms we accept; never "none", never a shared-secret HMAC
ALLOWED_ALGORITHMS = frozenset({"RS256", "ES256"})


class KeySource(Protocol):
    """Where a JWKS document comes from."""

    async def fetch(self) -> bytes:
        """The JWKS document; ServiceUnavailable when it cannot be had now."""
        ...


class FileKeySource:
    """A JWKS file on disk (re-read on refresh, so replacing the file rotates the keys)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def fetch(self) -> bytes:
        """Read the file in a worker thread."""
        try:
            return await anyio.Path(self.path).read_bytes()
        except OSError as exc:
            raise ServiceUnavailable(f"cannot read the JWKS file {self.path.name}") from exc


class UrlKeySource:
    """A JWKS published at an HTTPS URL, fetched with a timeout."""

    def __init__(self, url: str, *, timeout: float = 5.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self._transport = transport

    async def fetch(self) -> bytes:
        """GET the set; transport errors and non-200 answers become ServiceUnavailable."""
        try:
            async with httpx.AsyncClient(transport=self._transport, timeout=self.timeout) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("the token issuer's key set cannot be fetched") from exc
        if response.status_code != 200:
            raise ServiceUnavailable(f"the token issuer's key set answered {response.status_code}")
        return response.content


class JwksCache:
    """The keys of one issuer, cached for ``ttl_seconds``; ``key(kid)`` refetches once for an unknown kid."""

    def __init__(
        self,
        source: KeySource,
        *,
        ttl_seconds: float = 300.0,
        min_refetch_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._ttl = ttl_seconds
        self._min_refetch = min_refetch_seconds
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._anonymous: list[jwt.PyJWK] = []
        #: last successful fetch (the TTL runs from it) and last attempt (refetches are spaced from it)
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = anyio.Lock()
        #: how many times the source was fetched (observable in tests and metrics)
        self.fetches = 0
        #: bumped whenever a fetch brings a key set that differs from the one before (a rotation or a
        #: revocation): whatever was verified with the old set must be verified again
        self.generation = 0
        self._document: bytes | None = None

    async def _refresh(self, now: float) -> None:
        self.fetches += 1
        self._attempted_at = now
        document = await self._source.fetch()
        try:
            key_set = jwt.PyJWKSet.from_json(document.decode("utf-8"))
        except (jwt.PyJWKSetError, jwt.InvalidKeyError, UnicodeDecodeError, ValueError) as exc:
            raise ServiceUnavailable("the token issuer's key set is not a usable JWKS") from exc
        keys: dict[str, jwt.PyJWK] = {}
        anonymous: list[jwt.PyJWK] = []
        for key in key_set.keys:
            if key.public_key_use not in (None, "sig"):
                continue
            if key.key_id:
                keys[key.key_id] = key
            else:
                anonymous.append(key)
        self._keys, self._anonymous = keys, anonymous
        self._fetched_at = now
        if document != self._document:
            self._document = document
            self.generation += 1

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self._min_refetch

    def _lookup(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        # no kid: acceptable only when exactly one key could have signed it
        candidates = [k for k in (*self._keys.values(), *self._anonymous) if k.algorithm_name in (algorithm, None)]
        return candidates[0] if len(candidates) == 1 else None

    async def ensure_loaded(self) -> None:
        """Fetch the key set if it was never fetched; ServiceUnavailable (503) when there is still none.

        Readiness probes call this: a server whose issuer keys cannot be loaded cannot authenticate anyone.
        """
        async with self._lock:
            now = self._clock()
            if self._fetched_at is None and self._may_fetch(now):
                await self._refresh(now)
            if self._fetched_at is None:
                raise ServiceUnavailable("the token issuer's key set is not available yet")
            if not self._keys and not self._anonymous:
                raise ServiceUnavailable("the token issuer's key set has no signing keys")

    async def key(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """The key that should verify a token with this header; NotAuthenticated when there is none.

        ServiceUnavailable (503) when the key set has never been fetched successfully. A failed refresh of a
        stale set keeps serving the keys we have (an issuer outage must not lock every clinician out).
        """
        async with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self._ttl
            if stale and self._may_fetch(now):
                try:
                    await self._refresh(now)
                except ServiceUnavailable:
                    if self._fetched_at is None:
                        raise
                    log.warning("jwks_refresh_failed", effect="keeping the keys fetched before")
            if self._fetched_at is None:
                raise ServiceUnavailable("the token issuer's key set is not available yet")
            found = self._lookup(kid, algorithm)
            if found is None and self._may_fetch(now):
                await self._refresh(now)  # maybe the issuer rotated its keys
                found = self._lookup(kid, algorithm)
        if found is None:
            raise NotAuthenticated("the access token was signed with a key this server does not know")
        return found
