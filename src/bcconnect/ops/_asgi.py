"""The operations layer around the FHIR app: request ids, request metrics, ``/healthz``, ``/readyz``, ``/metrics``.

::

    app = OpsApp(fhir_app, metrics=settings.metrics, checks=readiness_checks(...), scrape=scrape)

It is the outermost ASGI callable, so it sees every request, FHIR or not:

- **Correlation**: a request's ``X-Request-ID`` is kept when it is a sane token (letters, digits, ``-._:``, at
  most 128), otherwise a new one is made; it is echoed on the response, handed to the FHIR app as the request's
  ``x-request-id`` header (the audit trail records it), and bound to every log line written while the request
  runs (structlog contextvars).
- **Request metrics**: count and latency by interaction (the FHIR app names it in ``scope["bcconnect.observed"]``)
  and status.
- **Health**: ``/healthz`` answers 200 while the process serves; ``/readyz`` runs the readiness checks (store
  reachable, migrations current, token keys loaded) and answers 200 or 503 with which check failed. Neither is
  audited or authenticated: neither shows any data.
- **Metrics**: the Prometheus text exposition on ``[metrics] path`` (when ``port = 0``), unauthenticated, for
  clients in ``[metrics] allow_networks`` only (loopback by default); others get 403.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import anyio
import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from bcconnect import metrics
from bcconnect.config import MetricsSettings
from bcconnect.logging import get_logger
from bcconnect.ops._collect import FamiliesCollector

log = get_logger("bcconnect.ops")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: gathers the store-derived metric families at scrape time (raises when the store cannot be read)
Scrape = Callable[[], Awaitable[list[Metric]]]

REQUEST_ID_HEADER: Final = "x-request-id"
#: a caller's request id is kept only when it is a plain token (it reaches logs and the audit trail)
_SANE_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: the scope key the FHIR app names the routed interaction under
OBSERVED_KEY: Final = "bcconnect.observed"
#: how long one readiness check may take before it counts as failed
CHECK_TIMEOUT_SECONDS: Final = 3.0


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    """One readiness condition: ``run()`` returns normally when met and raises (any error) when not.

    What it returns, when not None, is reported beside the result (``notes``), e.g. how far a replica is behind.
    """

    name: str
    run: Callable[[], Awaitable[str | None]]


def request_id_from(headers: Sequence[tuple[bytes, bytes]]) -> tuple[str, bool]:
    """The request's id and whether the caller supplied it (a missing or unsafe one is replaced).

    >>> request_id_from([(b"x-request-id", b"abc-123")])
    ('abc-123', True)
    >>> request_id_from([(b"x-request-id", b"bad id\\n")])[1]
    False
    """
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER.encode():
            text = value.decode("latin-1").strip()
            if _SANE_REQUEST_ID.match(text):
                return text, True
            break
    return uuid.uuid4().hex, False


def _allowed(client: Any, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if not client:
        return False
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return False
    return any(address in network for network in networks)


async def _respond(
    send: Send, status: int, body: bytes, content_type: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def process_exposition() -> bytes:
    """This process's (or, in multiprocess mode, every worker's) own metrics in the text format."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


class OpsApp:
    """Wraps an ASGI app (the FHIR endpoint, or nothing for a metrics-only listener)."""

    def __init__(
        self,
        app: AsgiApp | None,
        *,
        metrics_settings: MetricsSettings,
        checks: Sequence[ReadinessCheck] = (),
        scrape: Scrape | None = None,
    ) -> None:
        self.app = app
        self.settings = metrics_settings
        self.checks = tuple(checks)
        self.scrape = scrape
        #: with a metrics port of its own, requests that arrive on it get the probes and /metrics, nothing else
        self.metrics_port = metrics_settings.port if metrics_settings.enabled and metrics_settings.port else None
        self.networks = [ipaddress.ip_network(n, strict=False) for n in metrics_settings.allow_networks]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if self.app is not None:
                await self.app(scope, receive, send)
            elif scope["type"] == "lifespan":
                await _null_lifespan(receive, send)
            return
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        server = scope.get("server") or (None, None)
        on_metrics_port = self.metrics_port is not None and server[1] == self.metrics_port
        serve_metrics = self.settings.enabled and (on_metrics_port or self.metrics_port is None)
        if path in ("/healthz", "/readyz") or (serve_metrics and path == self.settings.path):
            if method not in ("GET", "HEAD"):
                await _respond(
                    send, 405, b"method not allowed\n", "text/plain; charset=utf-8", [(b"allow", b"GET, HEAD")]
                )
            elif path == "/healthz":
                await _respond(send, 200, b'{"status":"alive"}', "application/json")
            elif path == "/readyz":
                await self._ready(send)
            else:
                await self._metrics(scope, send)
            return
        if self.app is None or on_metrics_port:
            await _respond(send, 404, b"not found\n", "text/plain; charset=utf-8")
            return
        await self._fhir(scope, receive, send)

    async def _fhir(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = list(scope.get("headers", []))
        request_id, supplied = request_id_from(headers)
        if not supplied:
            headers = [(k, v) for k, v in headers if k.lower() != REQUEST_ID_HEADER.encode()]
            headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
        observed: dict[str, str] = {}
        inner_scope = {**scope, "headers": headers, OBSERVED_KEY: observed}
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), request_id.encode())],
                }
            await send(message)

        assert self.app is not None
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(inner_scope, receive, send_with_id)
            finally:
                interaction = observed.get("interaction", "unknown")
                labels = {"interaction": interaction, "status": str(status)}
                metrics.HTTP_REQUESTS.labels(**labels).inc()
                metrics.HTTP_REQUEST_DURATION.labels(**labels).observe(time.perf_counter() - started)

    async def _ready(self, send: Send) -> None:
        results: dict[str, str] = {}
        notes: dict[str, str] = {}

        async def one(check: ReadinessCheck) -> None:
            try:
                with anyio.fail_after(CHECK_TIMEOUT_SECONDS):
                    note = await check.run()
                results[check.name] = "ok"
                if note:
                    notes[check.name] = note
            except TimeoutError:
                results[check.name] = f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
            except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is reported
                results[check.name] = str(exc) or type(exc).__name__

        async with anyio.create_task_group() as group:
            for check in self.checks:
                group.start_soon(one, check)
        ready = all(value == "ok" for value in results.values())
        if not ready:
            log.warning("not_ready", **{f"check_{k}": v for k, v in results.items() if v != "ok"})
        answer: dict[str, object] = {
            "status": "ready" if ready else "not ready",
            "checks": dict(sorted(results.items())),
        }
        if notes:
            answer["notes"] = dict(sorted(notes.items()))
        body = orjson.dumps(answer)
        await _respond(send, 200 if ready else 503, body, "application/json")

    async def _metrics(self, scope: Scope, send: Send) -> None:
        if not _allowed(scope.get("client"), self.networks):
            await _respond(
                send, 403, b"metrics are served to the configured networks only\n", "text/plain; charset=utf-8"
            )
            return
        families: list[Metric] = []
        store_up = GaugeMetricFamily("bcconnect_store_up", "1 when the last scrape could read the store")
        if self.scrape is not None:
            try:
                families = await self.scrape()
                store_up.add_metric([], 1)
            except Exception as exc:  # noqa: BLE001 - a scrape during a store outage still reports the process
                log.warning("metrics_store_unreadable", error=str(exc))
                store_up.add_metric([], 0)
            families.append(store_up)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FamiliesCollector(families))
        body = process_exposition() + generate_latest(registry)
        await _respond(send, 200, body, CONTENT_TYPE_LATEST)


async def _null_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
