"""One HTTP client per source: timeouts, retries with jittered backoff, auth refresh, breaker, limiter.

Every foreign error is translated here, at the boundary, into the ``SourceError`` tree::

    httpx timeout / network error / reset, HTTP 429 500 502 503 504, malformed JSON  →  retried, then
                                                                                       SourceUnavailable
    HTTP 401 (after one token refresh), 403, token endpoint refusal                 →  SourceAuthError
    any other HTTP status, an unusable URL or protocol                               →  SourceProtocolError
    the breaker is open                                                              →  CircuitOpen
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import orjson
import structlog

from bcconnect.adapters._auth import Authenticator
from bcconnect.adapters._breaker import CircuitBreaker
from bcconnect.adapters._faults import TransientFault, Unauthorised, check_status
from bcconnect.adapters._retry import backoff_delay
from bcconnect.config import AdapterConfig
from bcconnect.errors import SourceAuthError, SourceProtocolError, SourceUnavailable

log = structlog.get_logger()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Runtime:
    """Randomness, time and sleeping, injectable so tests are deterministic and never wait for real."""

    #: jitter source (not security-relevant)
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    #: monotonic seconds, for token expiry and the breaker
    monotonic: Callable[[], float] = time.monotonic
    #: wall-clock UTC, only to read HTTP-date ``Retry-After`` values
    utcnow: Callable[[], datetime] = _utcnow


@dataclass(slots=True)
class FetchStats:
    """Counters for one source's traffic (for logs and tests)."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    malformed_bodies: int = 0
    auth_refreshes: int = 0


class SourceHttp:
    """GETs JSON from one source with the full set of resilience rules. Owns nothing; the caller closes."""

    def __init__(
        self,
        config: AdapterConfig,
        *,
        client: httpx.AsyncClient,
        auth: Authenticator,
        runtime: Runtime,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._name = config.name
        self._fetch = config.fetch
        self._client = client
        self._auth = auth
        self._runtime = runtime
        self._breaker = breaker or CircuitBreaker(
            source=config.name,
            failure_threshold=config.breaker.failure_threshold,
            reset_seconds=config.breaker.reset_seconds,
            clock=runtime.monotonic,
        )
        self._limiter = anyio.CapacityLimiter(max(1, config.fetch.concurrency))
        base = urlsplit(config.base_url or "")
        self._origin = (base.scheme, base.netloc)
        self.stats = FetchStats()
        #: the URL and HTTP status of the latest answer (status None: no answer), for failure summaries
        self.last_url: str | None = None
        self.last_status: int | None = None

    @property
    def token_endpoint(self) -> str | None:
        """Where tokens come from (OAuth2 sources, once the first token was fetched), else None."""
        url = getattr(self._auth, "token_url", None)
        return url if isinstance(url, str) else None

    @property
    def breaker(self) -> CircuitBreaker:
        """This source's circuit breaker."""
        return self._breaker

    def check_same_origin(self, url: str) -> None:
        """Refuse to follow a link to another host: our credentials must not leave for it."""
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self._origin:
            raise SourceProtocolError(
                f"a paging link points to another origin ({parts.scheme}://{parts.netloc})", source=self._name
            )

    async def get_json(
        self, url: str, *, params: Mapping[str, str] | None = None, breaker: CircuitBreaker | None = None
    ) -> tuple[Any, httpx.Headers]:
        """GET ``url`` and decode its JSON body, retrying transient faults; returns body and headers.

        ``breaker`` is the breaker of the part of the source this call belongs to (default: the source's).
        """
        what = f"GET {urlsplit(url).path}"
        attempt = 0
        refreshed = False
        circuit = breaker or self._breaker
        while True:
            circuit.before_call()
            verdict = False
            try:
                async with self._limiter:
                    body, headers = await self._attempt(url, params, what)
                circuit.record_success()
                verdict = True
                return body, headers
            except Unauthorised as exc:
                if self._auth.can_refresh and not refreshed:
                    # the token may have expired early or been revoked: one fresh token, then give up
                    refreshed = True
                    self.stats.auth_refreshes += 1
                    self._auth.invalidate()
                    log.info("source_token_refresh", source=self._name)
                    continue
                raise SourceAuthError(f"{what}: credentials refused (HTTP 401)", source=self._name) from exc
            except TransientFault as exc:
                if exc.unhealthy:
                    circuit.record_failure()
                    verdict = True
                else:
                    self.stats.throttled += 1
                if attempt >= self._fetch.max_retries:
                    raise SourceUnavailable(
                        f"{exc.reason} (gave up after {attempt + 1} attempts)",
                        source=self._name,
                        retry_after=exc.retry_after,
                    ) from exc
                delay = self._delay(attempt, exc.retry_after)
                log.info("source_retry", source=self._name, reason=exc.reason, attempt=attempt + 1, delay=delay)
                self.stats.retries += 1
                attempt += 1
                await self._runtime.sleep(delay)
            finally:
                if not verdict:
                    # cancelled, or an answer that says nothing about the source's health
                    circuit.release_trial()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after  # already capped when parsed
        return backoff_delay(
            attempt,
            base=self._fetch.backoff_base_seconds,
            cap=self._fetch.backoff_max_seconds,
            rng=self._runtime.rng,
        )

    async def _attempt(self, url: str, params: Mapping[str, str] | None, what: str) -> tuple[Any, httpx.Headers]:
        timeout = self._fetch.timeout_seconds
        self.stats.requests += 1
        self.last_url = str(httpx.URL(url, params=params)) if params else url
        self.last_status = None
        try:
            # httpx times each phase; the outer deadline also bounds a server that drips bytes slowly
            with anyio.fail_after(timeout * 2):
                headers = await self._auth.headers(self._client, request_timeout=timeout)
                headers["Accept"] = "application/json, application/fhir+json"
                response = await self._client.get(url, params=params, headers=headers, timeout=timeout)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise TransientFault(f"{what}: timed out") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise TransientFault(f"{what}: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise SourceProtocolError(f"{what}: {type(exc).__name__}: {exc}", source=self._name) from exc
        except httpx.InvalidURL as exc:
            raise SourceProtocolError(f"{what}: invalid URL ({exc})", source=self._name) from exc
        self.last_status = response.status_code
        check_status(
            response,
            source=self._name,
            what=what,
            now=self._runtime.utcnow(),
            retry_after_cap=self._fetch.backoff_max_seconds,
        )
        try:
            return orjson.loads(response.content), response.headers
        except orjson.JSONDecodeError as exc:
            # a body cut off mid-way (a reset proxy, a crashed worker) is worth another attempt
            self.stats.malformed_bodies += 1
            raise TransientFault(f"{what}: malformed JSON body") from exc
