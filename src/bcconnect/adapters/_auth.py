"""How an adapter proves who it is: OAuth2 client credentials, an API key header, a static bearer token."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import anyio
import httpx
import orjson
import structlog

from bcconnect.adapters._faults import TransientFault, check_status
from bcconnect.config import AdapterConfig, SourceAuthType
from bcconnect.errors import ConfigError, SourceAuthError, SourceProtocolError

log = structlog.get_logger()


class Authenticator(Protocol):
    """Headers that authenticate a request, and whether a 401 is worth one refresh."""

    can_refresh: bool

    async def headers(self, client: httpx.AsyncClient, *, request_timeout: float) -> dict[str, str]:
        """The headers to add to the next request (may fetch a token first)."""
        ...

    def invalidate(self) -> None:
        """Forget cached credentials (after a 401)."""
        ...


@dataclass
class StaticHeaders:
    """No refresh possible: an API key, a static bearer token, or nothing at all."""

    values: dict[str, str]
    can_refresh: bool = False

    async def headers(self, client: httpx.AsyncClient, *, request_timeout: float) -> dict[str, str]:
        """The fixed headers."""
        return dict(self.values)

    def invalidate(self) -> None:
        """Nothing cached to forget."""


class OAuth2ClientCredentials:
    """The client-credentials grant; the token is cached until shortly before it expires.

    The token endpoint is the configured ``token_url`` or, when there is none, the ``token_endpoint`` of the
    server's SMART discovery document (``<FHIR base>/.well-known/smart-configuration``), read once.
    """

    can_refresh = True

    def __init__(
        self,
        *,
        source: str,
        token_url: str | None,
        client_id: str,
        client_secret: str,
        retry_after_cap: float,
        clock: Callable[[], float] = time.monotonic,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
        discovery_url: str | None = None,
    ) -> None:
        self._source = source
        self._token_url = token_url
        self._discovery_url = discovery_url
        self._client_id = client_id
        self._secret = client_secret
        self._cap = retry_after_cap
        self._clock = clock
        self._utcnow = utcnow
        self._token: str | None = None
        self._expires_at = 0.0
        # one token request at a time: concurrent callers wait for it rather than each fetching one
        self._lock = anyio.Lock()
        #: how many tokens were fetched (visible for tests and metrics)
        self.fetches = 0

    async def headers(self, client: httpx.AsyncClient, *, request_timeout: float) -> dict[str, str]:
        """``Authorization: Bearer <token>``, fetching a token when none is cached or it has expired."""
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                await self._fetch(client, request_timeout=request_timeout)
            assert self._token is not None
            return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        """Drop the cached token; the next request fetches a new one."""
        self._token = None

    @property
    def token_url(self) -> str | None:
        """The token endpoint in use: configured, or discovered on the first token request (else None)."""
        return self._token_url

    async def _discover(self, client: httpx.AsyncClient, *, request_timeout: float) -> str:
        """The token endpoint the server's SMART configuration names."""
        url = self._discovery_url
        if url is None:
            raise SourceProtocolError(
                "no token_url configured and no FHIR base to discover it from", source=self._source
            )
        what = f"SMART discovery ({url})"
        response = await client.get(url, headers={"Accept": "application/json"}, timeout=request_timeout)
        if response.status_code == 404:
            raise SourceAuthError(f"{what}: HTTP 404 — set [auth] token_url in the adapter file", source=self._source)
        check_status(response, source=self._source, what=what, now=self._utcnow(), retry_after_cap=self._cap)
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise TransientFault(f"{what}: malformed JSON body") from exc
        endpoint = body.get("token_endpoint") if isinstance(body, dict) else None
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise SourceAuthError(
                f"{what}: no token_endpoint in the document — set [auth] token_url in the adapter file",
                source=self._source,
            )
        log.info("source_token_endpoint_discovered", source=self._source, token_endpoint=endpoint)
        return endpoint

    async def _fetch(self, client: httpx.AsyncClient, *, request_timeout: float) -> None:
        what = "token request"
        if self._token_url is None:
            self._token_url = await self._discover(client, request_timeout=request_timeout)
        response = await client.post(
            self._token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._secret,
            },
            headers={"Accept": "application/json"},
            timeout=request_timeout,
        )
        self.fetches += 1
        if response.status_code in (400, 401, 403):
            raise SourceAuthError(
                f"the token endpoint refused the client credentials (HTTP {response.status_code})",
                source=self._source,
            )
        check_status(response, source=self._source, what=what, now=self._utcnow(), retry_after_cap=self._cap)
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise TransientFault(f"{what}: malformed JSON body") from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise SourceProtocolError("the token response has no access_token", source=self._source)
        expires_in = body.get("expires_in", 300)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 300.0
        # renew a little early so a token never expires between our check and the server's
        margin = min(30.0, lifetime * 0.1)
        self._token = token
        self._expires_at = self._clock() + max(0.0, lifetime - margin)
        log.info("source_token_fetched", source=self._source, expires_in=lifetime)


def make_authenticator(
    config: AdapterConfig,
    *,
    environ: Mapping[str, str] | None,
    clock: Callable[[], float] = time.monotonic,
    utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Authenticator:
    """The authenticator ``config.auth`` describes; secrets are read from the environment here, once."""
    auth = config.auth
    where = str(config.source_file) if config.source_file else None
    if auth.type is SourceAuthType.NONE:
        return StaticHeaders({})
    if auth.type is SourceAuthType.API_KEY:
        key = config.secret(auth.api_key_env, environ)
        if key is None:
            raise ConfigError("auth type 'api_key' needs api_key_env", file=where, key="auth.api_key_env")
        return StaticHeaders({auth.api_key_header: key})
    if auth.type is SourceAuthType.BEARER:
        token = config.secret(auth.token_env, environ)
        if token is None:
            raise ConfigError("auth type 'bearer' needs token_env", file=where, key="auth.token_env")
        return StaticHeaders({"Authorization": f"Bearer {token}"})
    secret = config.secret(auth.client_secret_env, environ)
    if secret is None or auth.client_id is None:
        raise ConfigError(
            "auth type 'oauth2_client_credentials' needs client_id and client_secret_env",
            file=where,
            key="auth",
        )
    base = (config.base_url or "").rstrip("/")
    return OAuth2ClientCredentials(
        source=config.name,
        token_url=auth.token_url,
        discovery_url=f"{base}/.well-known/smart-configuration" if base else None,
        client_id=auth.client_id,
        client_secret=secret,
        retry_after_cap=config.fetch.backoff_max_seconds,
        clock=clock,
        utcnow=utcnow,
    )
