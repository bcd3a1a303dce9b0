"""The ASGI application: decode the request, route, authenticate, run the handler, encode the response.

Resources (the store and the view over it) are opened in the ASGI lifespan unless a view is passed in.
Errors become OperationOutcomes in :mod:`bcconnect.api._outcome` only.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from bcconnect.access import request_deadline
from bcconnect.api._bulk_ops import BULK_HANDLERS
from bcconnect.api._cohort_ops import cohort_handler
from bcconnect.api._format import FHIR_JSON, check_format, maybe_gzip, pretty
from bcconnect.api._handlers import HANDLERS, Env
from bcconnect.api._http import Request, Response
from bcconnect.api._outcome import error_to_outcome, operation_outcome
from bcconnect.api._router import route
from bcconnect.api._triage_ops import TRIAGE_HANDLERS
from bcconnect.bulk import BulkExports
from bcconnect.cohorts import Cohorts
from bcconnect.config import Settings
from bcconnect.errors import InvalidRequest, RequestError
from bcconnect.logging import get_logger
from bcconnect.triage import Triage
from bcconnect.view import OPEN_ACCESS, AccessContext, View, open_view

log = get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: ``authenticate(request) -> AccessContext``; raise NotAuthenticated / Forbidden to refuse
Authenticate = Callable[[Request], Awaitable[AccessContext]]
#: ``on_request_complete(request, access, status, patients)``; access is None when authentication failed
RequestCompleteHook = Callable[[Request, AccessContext | None, int, frozenset[str]], Awaitable[None]]
#: another ASGI app served beside the endpoint below a path prefix (the web pages at ``/app``)
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def open_access(request: Request) -> AccessContext:
    """The default authenticator: everyone gets the anonymous open context."""
    return OPEN_ACCESS


async def ignore_completion(
    request: Request, access: AccessContext | None, status: int, patients: frozenset[str]
) -> None:
    """The default completion hook: nothing."""


class FhirApp:
    """The ASGI callable returned by :func:`create_app`."""

    def __init__(
        self,
        settings: Settings,
        view: View | None,
        *,
        authenticate: Authenticate,
        on_request_complete: RequestCompleteHook,
        page_key: bytes,
        mounts: Mapping[str, AsgiApp] | None = None,
        triage: Triage | None = None,
        bulk: BulkExports | None = None,
    ) -> None:
        self.settings = settings
        #: the Bulk Data service ($export); None: the operations answer that bulk export is not enabled
        self.bulk = bulk
        #: the triage service the operations use (None: built over the view per request)
        self.triage = triage
        #: cohort definitions and opt-out file from the settings (built with the view)
        self.cohorts: Cohorts | None = None
        self.mounts = {"/" + k.strip("/"): v for k, v in (mounts or {}).items()}
        self.view = view
        self.authenticate = authenticate
        self.on_request_complete = on_request_complete
        self.page_key = page_key
        self.base_path = "/" + settings.api.base_path.strip("/") if settings.api.base_path.strip("/") else ""
        #: the handlers' shared environment (see :meth:`_env`)
        self._handler_env: Env | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            path: str = scope.get("path", "/")
            for prefix, mounted in self.mounts.items():
                if path == prefix or path.startswith(prefix + "/"):
                    await mounted(scope, receive, send)
                    return
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        async with AsyncExitStack() as stack:
            message = await receive()
            assert message["type"] == "lifespan.startup"
            try:
                if self.view is None:
                    api = self.settings.api
                    self.view = await stack.enter_async_context(
                        open_view(self.settings.store_url(), default_count=api.default_count, max_count=api.max_count)
                    )
            except Exception as exc:  # noqa: BLE001 - reported to the server, which stops
                await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                return
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})

    def _env(self) -> Env:
        """What the handlers share, built on the first request (the view exists once the lifespan ran)."""
        assert self.view is not None, "the lifespan did not run"
        if self.cohorts is None:
            self.cohorts = Cohorts.from_settings(self.settings, self.view)
        env = self._handler_env
        # rebuilt if a service was swapped after start-up (tests do), so the handlers never see a stale one
        if (
            env is None
            or env.view is not self.view
            or env.cohorts is not self.cohorts
            or env.triage is not self.triage
            or env.bulk is not self.bulk
        ):
            env = self._handler_env = Env(
                self.view,
                self.page_key,
                auth=self.settings.auth,
                triage=self.triage,
                cohorts=self.cohorts,
                bulk=self.bulk,
            )
        return env

    def _request(self, scope: Scope) -> Request | None:
        path: str = scope.get("path", "/")
        if self.base_path and not (path == self.base_path or path.startswith(self.base_path + "/")):
            return None
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", []):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        query_text = scope.get("query_string", b"").decode("latin-1")
        query = tuple(parse_qsl(query_text, keep_blank_values=True, encoding="utf-8", errors="replace"))
        base = self.settings.api.public_base_url
        if not base:
            host = headers.get("host") or "{}:{}".format(*(scope.get("server") or ("localhost", 80)))
            base = f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}{self.base_path}"
        client = scope.get("client")
        return Request(
            method=scope["method"],
            path=path[len(self.base_path) :],
            query=query,
            headers=headers,
            base_url=base.rstrip("/"),
            client=client[0] if client else None,
        )

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = self._request(scope)
        if request is None:
            body = operation_outcome("error", "not-found", f"this server serves FHIR below {self.base_path}/")
            await _send(send, Response(404, body), head=False, accept_encoding=None)
            return
        access: AccessContext | None = None
        interaction = "unknown"
        try:
            # the caller is authenticated before a routing or format refusal is reported, so the AuditEvent
            # of a 404, 405 or 406 names who asked, for which organisation and purpose
            refusal: RequestError | None = None
            try:
                found = route(request.method, request.path)
                interaction = found.interaction
                # the operations layer wrapped around this app labels its request metrics with the interaction
                observed = scope.get("bcconnect.observed")
                if isinstance(observed, dict):
                    observed["interaction"] = interaction
                if interaction != "export-file":  # the files are NDJSON (Accept: application/fhir+ndjson)
                    check_format(request.param("_format"), request.header("accept"))
            except RequestError as exc:
                refusal = exc
            if request.method == "POST" and refusal is None:
                request = replace(request, body=await _read_body(receive, limit=MAX_BODY_BYTES))
            access = await self.authenticate(request)
            if refusal is not None:
                raise refusal
            assert self.view is not None, "the lifespan did not run"
            with request_deadline(self.settings.security.request_timeout_seconds):
                handler = (
                    cohort_handler(found)
                    or HANDLERS.get(found.interaction)
                    or TRIAGE_HANDLERS.get(found.interaction)
                    or BULK_HANDLERS[found.interaction]
                )
                response = await handler(self._env(), request, access, found)
        except Exception as exc:  # noqa: BLE001 - every error becomes an OperationOutcome (one module)
            status, body, headers = error_to_outcome(exc)
            response = Response(status, body, headers)
        try:
            await self.on_request_complete(request, access, response.status, response.patients)
        except Exception as exc:  # noqa: BLE001 - a failed audit write must fail the request
            status, body, headers = error_to_outcome(exc)
            response = Response(status, body, headers)
        if response.fhir and response.body and request.param("_pretty") == "true":
            response.body = pretty(response.body)
        await _send(send, response, head=request.method == "HEAD", accept_encoding=request.header("accept-encoding"))
        log.info(
            "fhir_request",
            interaction=interaction,
            method=request.method,
            status=response.status,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )


#: the largest request body accepted (a $match Parameters resource is a few kilobytes)
MAX_BODY_BYTES = 1_000_000


async def _read_body(receive: Receive, *, limit: int) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise InvalidRequest(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, response: Response, *, head: bool, accept_encoding: str | None) -> None:
    if response.stream is not None:
        await _send_stream(send, response, head=head)
        return
    body, compressed = maybe_gzip(response.body, accept_encoding)
    headers = [(k.encode(), v.encode()) for k, v in response.headers.items()]
    if response.body and "content-type" not in response.headers:
        headers.append((b"content-type", FHIR_JSON.encode()))
    headers.append((b"vary", b"accept-encoding"))
    if compressed:
        headers.append((b"content-encoding", b"gzip"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _send_stream(send: Send, response: Response, *, head: bool) -> None:
    """A streamed body: headers first, then each chunk as it is read (never compressed, never held whole)."""
    assert response.stream is not None
    headers = [(k.encode(), v.encode()) for k, v in response.headers.items()]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if not head:
        async for chunk in response.stream():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def create_app(
    settings: Settings,
    view: View | None = None,
    *,
    authenticate: Authenticate = open_access,
    on_request_complete: RequestCompleteHook = ignore_completion,
    page_key: bytes | None = None,
    mounts: Mapping[str, AsgiApp] | None = None,
    triage: Triage | None = None,
    bulk: BulkExports | None = None,
) -> FhirApp:
    """The FHIR endpoint as an ASGI app.

    ``view``: serve this view (tests, or a caller that manages the store); otherwise the lifespan opens the
    store at ``settings.store.url``. ``page_key`` signs page tokens (random per process unless given; replicas
    must share one). ``mounts``: other ASGI apps served below a path prefix (``{"/app": pages}``). ``bulk``: the
    Bulk Data service behind ``$export`` (its worker runs beside the server, see ``BulkExports.run_worker``).
    """
    return FhirApp(
        settings,
        view,
        authenticate=authenticate,
        on_request_complete=on_request_complete,
        page_key=page_key or secrets.token_bytes(32),
        mounts=mounts,
        triage=triage,
        bulk=bulk,
    )
