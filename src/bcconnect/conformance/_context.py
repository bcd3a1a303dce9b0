"""The one way a check reaches its target: a recording HTTP client, the run's options, and shared look-ups.

Every request a check makes is recorded as an :class:`Exchange` on that check's result, with the
``Authorization`` value and secrets redacted and bodies cut to excerpts. Look-ups several checks need (the
CapabilityStatement, a sample Patient, an access token) are fetched once per run by :meth:`Context.shared`;
a check that uses one gets the recorded exchanges attached too, so its evidence is complete.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import anyio
import httpx
import orjson

from bcconnect.conformance._model import Exchange, Failed, NotApplicable

T = TypeVar("T")

#: a 429 is waited out (its Retry-After, capped) this many times before the check judges it
RETRIES_ON_429 = 4
MAX_RETRY_AFTER_SECONDS = 10.0
#: longest body excerpt kept per request and response (the report stays readable and small)
REQUEST_EXCERPT = 2_000
RESPONSE_EXCERPT = 4_000
_REDACTED_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "set-cookie"})
_SECRET_FORM_FIELDS = ("client_secret", "password", "assertion")
#: response headers worth showing in a report
_SHOWN_RESPONSE_HEADERS = frozenset(
    {
        "content-type",
        "content-encoding",
        "etag",
        "last-modified",
        "location",
        "allow",
        "retry-after",
        "www-authenticate",
        "vary",
        "content-length",
    }
)


def _redact_header(name: str, value: str) -> str:
    if name.lower() not in _REDACTED_HEADERS:
        return value
    scheme, _, rest = value.partition(" ")
    return f"{scheme} …(redacted)" if rest else "…(redacted)"


def _redact_form(body: str) -> str:
    parts = []
    for part in body.split("&"):
        name, sep, _ = part.partition("=")
        parts.append(f"{name}=…(redacted)" if sep and name in _SECRET_FORM_FIELDS else part)
    return "&".join(parts)


def excerpt(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


@dataclass(slots=True)
class Answer:
    """A response a check judges: status, headers (lower-case names), raw body and parsed JSON if any."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    raw_body: bytes
    url: str

    def json(self) -> Any:
        """The body parsed as JSON; a :class:`Failed` when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise Failed(f"the answer to {self.url} (HTTP {self.status}) is not JSON: {exc}") from exc

    def maybe_json(self) -> Any:
        """The body parsed as JSON, or None."""
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None

    def header(self, name: str) -> str | None:
        """One header (case-insensitive)."""
        return self.headers.get(name.lower())


@dataclass(slots=True)
class Session:
    """What the checks of one run share: the target, options, HTTP client and memoised look-ups."""

    target: str
    options: Mapping[str, str]
    client: httpx.AsyncClient
    memo: dict[str, tuple[object, list[Exchange]]] = field(default_factory=dict)
    #: a memo that raised: the same exception for every later check that needs it
    memo_errors: dict[str, Exception] = field(default_factory=dict)
    #: the politeness limit: at most this many requests per second (0: no limit)
    rate: float = 0.0
    last_request: float = 0.0

    async def pace(self) -> None:
        """Wait until the next request keeps the run under :attr:`rate` requests per second."""
        if self.rate <= 0:
            return
        wait = self.last_request + 1.0 / self.rate - time.monotonic()
        if wait > 0:
            await anyio.sleep(wait)
        self.last_request = time.monotonic()


class Context:
    """Handed to each check: ``get``/``request`` record exchanges; ``evidence`` notes what was judged."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.exchanges: list[Exchange] = []
        self.evidence: list[str] = []

    @property
    def target(self) -> str:
        """The target URL the run was pointed at (no trailing slash)."""
        return self.session.target

    def option(self, name: str, default: str | None = None) -> str | None:
        """A run option (``--objector``, ``--token`` …), or ``default``."""
        return self.session.options.get(name, default)

    def note(self, text: str) -> None:
        """Record a piece of evidence the verdict rests on."""
        self.evidence.append(text)

    def url(self, path: str) -> str:
        """An absolute URL: ``path`` relative to the target unless it is absolute already."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.target}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        data: Mapping[str, str] | None = None,
        auth: bool = True,
        note: str = "",
        timeout: float | None = None,  # noqa: ASYNC109 - a per-request HTTP timeout, passed to httpx
        retry_429: bool = True,
    ) -> Answer:
        """Send one request and record it. ``auth``: add the run's bearer token (if any).

        A 429 answer is recorded and waited out (``Retry-After``, capped) up to :data:`RETRIES_ON_429` times,
        as a polite client does; ``retry_429=False`` hands the 429 to the check instead.
        """
        for _ in range(RETRIES_ON_429):
            answer = await self._request_once(method, path, headers, content, data, auth, note, timeout)
            if answer.status != 429 or not retry_429:
                return answer
            self.exchanges[-1].note = "rate limited: waited for Retry-After and tried again"
            await anyio.sleep(retry_after_seconds(answer.header("retry-after")))
        return await self._request_once(method, path, headers, content, data, auth, note, timeout)

    async def _request_once(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        data: Mapping[str, str] | None,
        auth: bool,
        note: str,
        timeout: float | None,  # noqa: ASYNC109 - a per-request HTTP timeout, passed to httpx
    ) -> Answer:
        await self.session.pace()
        # identity unless a check asks for compression, so bodies are judged exactly as sent
        sent_headers = {"accept": "application/fhir+json", "accept-encoding": "identity"}
        token = self.session.options.get("token")
        if auth and token:
            sent_headers["authorization"] = f"Bearer {token}"
        sent_headers.update({k.lower(): v for k, v in (headers or {}).items()})
        url = self.url(path)
        started = time.perf_counter()
        exchange = Exchange(
            method=method,
            url=url,
            request_headers={k: _redact_header(k, v) for k, v in sent_headers.items()},
            request_body=excerpt(
                _redact_form(httpx.QueryParams(dict(data)).__str__())
                if data
                else (content or b"").decode("utf-8", "replace"),
                REQUEST_EXCERPT,
            ),
            status=None,
            response_headers={},
            response_body="",
            elapsed_ms=0.0,
            note=note,
        )
        self.exchanges.append(exchange)
        try:
            request = self.session.client.build_request(
                method,
                url,
                headers=sent_headers,
                content=content,
                data=dict(data) if data else None,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            response = await self.session.client.send(request, stream=True)
            try:
                # the raw bytes as sent: a check about Content-Encoding needs them undecoded
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            exchange.elapsed_ms = (time.perf_counter() - started) * 1000
            exchange.response_body = f"(no answer: {type(exc).__name__}: {exc})"
            raise
        exchange.elapsed_ms = (time.perf_counter() - started) * 1000
        headers_lower = {k.lower(): v for k, v in response.headers.items()}
        body = raw
        if headers_lower.get("content-encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(raw)
            except (OSError, EOFError):
                body = raw  # judged by the check that asked for gzip
        exchange.status = response.status_code
        exchange.response_headers = {k: v for k, v in headers_lower.items() if k in _SHOWN_RESPONSE_HEADERS}
        exchange.response_body = excerpt(body.decode("utf-8", "replace"), RESPONSE_EXCERPT)
        return Answer(response.status_code, headers_lower, body, raw, str(response.url))

    async def get(self, path: str, **kwargs: Any) -> Answer:
        """``GET`` (see :meth:`request`)."""
        return await self.request("GET", path, **kwargs)

    async def shared(self, key: str, fetch: Callable[[Context], Awaitable[T]]) -> T:
        """A look-up several checks need, fetched once per run; its exchanges are attached to this check."""
        if key in self.session.memo_errors:
            raise self.session.memo_errors[key]
        if key not in self.session.memo:
            scratch = Context(self.session)
            try:
                value = await fetch(scratch)
            except (Failed, NotApplicable, httpx.HTTPError) as exc:
                self.session.memo_errors[key] = exc
                self.exchanges.extend(scratch.exchanges)
                raise
            self.session.memo[key] = (value, scratch.exchanges)
        value_found, exchanges = self.session.memo[key]
        self.exchanges.extend(exchanges)
        return value_found  # type: ignore[return-value]


def retry_after_seconds(value: str | None) -> float:
    """Seconds to wait for a ``Retry-After`` value (seconds or an HTTP date), capped; 1 when absent or odd."""
    if not value:
        return 1.0
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    if when.tzinfo is None:
        return 1.0
    return max(0.0, min((when - datetime.now(UTC)).total_seconds(), MAX_RETRY_AFTER_SECONDS))


def require(condition: object, why: str) -> None:
    """Fail the check with ``why`` unless ``condition`` holds."""
    if not condition:
        raise Failed(why)
