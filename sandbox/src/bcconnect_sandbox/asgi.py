"""Plain ASGI plumbing shared by the simulated servers: requests, responses, faults on the wire, a request log."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

import anyio
import orjson

from bcconnect_sandbox.faults import FaultPlan, HttpFault
from bcconnect_sandbox.settings import FaultSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

REQUEST_LOG_SIZE = 10_000


class ConnectionResetFault(Exception):
    """Raised inside a handler to make uvicorn drop the connection mid-body (an injected reset)."""


class _DropInjectedResets(logging.Filter):
    """Keeps uvicorn's error log free of the resets we inject on purpose (real errors still show)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionResetFault)


logging.getLogger("uvicorn.error").addFilter(_DropInjectedResets())


@dataclass(frozen=True, slots=True)
class Request:
    """What a handler needs of an HTTP request."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]
    body: bytes

    @property
    def target(self) -> str:
        """Path and query as sent (for the request log)."""
        if not self.query:
            return self.path
        return self.path + "?" + "&".join(f"{k}={v}" for k, v in self.query)

    def params(self, name: str) -> list[str]:
        """Every value of query parameter ``name``."""
        return [v for k, v in self.query if k == name]

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.params(name)
        return values[0] if values else None


@dataclass(slots=True)
class Response:
    """An HTTP answer before faults are applied."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def json_response(
    status: int, payload: object, *, content_type: str = "application/json", headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer serialised with orjson (deterministic key order: insertion order)."""
    return Response(status, orjson.dumps(payload), dict(headers or {}), content_type)


async def read_request(scope: Scope, receive: Receive) -> Request:
    """Read the whole request (bodies here are small: token forms)."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    query = tuple(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
    return Request(scope["method"], scope["path"], query, headers, b"".join(chunks))


async def send_response(send: Send, response: Response) -> None:
    """Send ``response`` as is."""
    headers = [(b"content-type", response.content_type.encode()), (b"content-length", str(len(response.body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in response.headers.items()]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


class FaultyWire:
    """Applies an HTTP fault to a response on its way out and keeps the trust's request log."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.log: deque[tuple[str, str, int]] = deque(maxlen=REQUEST_LOG_SIZE)

    @property
    def settings(self) -> FaultSettings:
        """The fault settings in force."""
        return self.plan.settings

    async def before(self, receive: Receive) -> HttpFault | None:
        """Draw the fault of a data request, wait the added latency, and hang if the fault says so."""
        fault = self.plan.next_http()
        if self.settings.latency_ms:
            await anyio.sleep(self.settings.latency_ms / 1000)
        if fault is HttpFault.TIMEOUT:
            # hang until the client gives up (it disconnects) or the hang ends; then answer normally
            with anyio.move_on_after(self.settings.hang_seconds):
                while (await receive())["type"] != "http.disconnect":
                    pass
        return fault

    def error_response(self, fault: HttpFault) -> Response | None:
        """The answer that replaces the real one for status faults (5xx, 429)."""
        status = fault.status
        if status is None:
            return None
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "throttled" if status == 429 else "transient",
                    "diagnostics": f"injected fault {fault.value}",
                }
            ],
        }
        headers = {"retry-after": str(self.settings.retry_after_seconds)} if status == 429 else {}
        return json_response(status, outcome, content_type="application/fhir+json", headers=headers)

    async def send(self, send: Send, request: Request, response: Response, fault: HttpFault | None) -> None:
        """Send ``response`` with ``fault`` applied to its bytes, and log it."""
        self.log.append((request.method, request.target, response.status))
        if fault is HttpFault.TRUNCATED:
            response.body = response.body[: max(1, len(response.body) // 2)]
        elif fault is HttpFault.MALFORMED:
            response.body = response.body[:-1] + b",}"  # a trailing comma: not JSON
        if fault is HttpFault.RESET:
            headers = [
                (b"content-type", response.content_type.encode()),
                (b"content-length", str(len(response.body)).encode()),
            ]
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send(
                {"type": "http.response.body", "body": response.body[: len(response.body) // 2], "more_body": True}
            )
            raise ConnectionResetFault(f"{self.plan.trust}: injected connection reset")
        await send_response(send, response)


class RateLimiter:
    """A sliding one-second window on wall-clock time: RXK's 429 under load (off when ``per_second`` is 0)."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self._times: deque[float] = deque()
        self._answers = 0

    def retry_after(self) -> str | None:
        """None when the request may go on, else the ``Retry-After`` value (seconds or an HTTP date, in turn)."""
        if self.per_second <= 0:
            return None
        now = time.monotonic()
        while self._times and now - self._times[0] > 1.0:
            self._times.popleft()
        if len(self._times) >= self.per_second:
            self._answers += 1
            return "1" if self._answers % 2 else formatdate(time.time() + 1, usegmt=True)
        self._times.append(now)
        return None
