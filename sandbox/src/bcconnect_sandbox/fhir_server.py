"""The FHIR R4 REST server of RL4 (and, with quirks, RXK): OAuth2 client credentials, search, history, read."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Final
from urllib.parse import parse_qsl, urlencode

from bcconnect_sandbox.asgi import (
    FaultyWire,
    RateLimiter,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    json_response,
    read_request,
)
from bcconnect_sandbox.dialects.fhir import KIND_OF_TYPE, RESOURCE_TYPE, Json, instant, to_fhir
from bcconnect_sandbox.faults import HttpFault
from bcconnect_sandbox.settings import Credentials, SandboxSettings
from bcconnect_sandbox.state import TrustState, Version

FHIR_BASE: Final = "/fhir/R4"
FHIR_JSON: Final = "application/fhir+json"
#: a page stops scanning after this many persons even when not full, so rare types page promptly
SCAN_BUDGET_PERSONS: Final = 2_000
_PREFIXES: Final = ("gt", "ge", "lt", "le", "eq")

Transform = Callable[[Json], Json]


def outcome(status: int, code: str, text: str, headers: dict[str, str] | None = None) -> Response:
    """An OperationOutcome answer."""
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
    return json_response(status, body, content_type=FHIR_JSON, headers=headers)


def parse_instant(value: str) -> datetime:
    """A FHIR instant or dateTime (``Z`` or offset; a bare date means its start, UTC)."""
    # a "+" that was not percent-encoded arrives as a space
    text = value.strip().replace(" ", "+").replace("Z", "+00:00")
    if len(text) == 10:
        text += "T00:00:00+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"instant without a time zone: {value!r}")
    return moment


def take_page(versions: Iterator[Version], count: int, high: int | None) -> tuple[list[Version], int | None]:
    """Up to ``count`` versions, and the tick the next page starts at (None: nothing more now).

    Stops early (a short page with a next link) after scanning ``SCAN_BUDGET_PERSONS`` persons.
    """
    out: list[Version] = []
    scanned = 0
    for v in versions:
        if high is not None and v.tick > high:
            return out, None
        if not v.kind:  # a person boundary
            scanned += 1
            if scanned >= SCAN_BUDGET_PERSONS:
                return out, v.tick + 1
            continue
        if len(out) == count:
            return out, out[-1].tick + 1
        out.append(v)
    return out, None


class TokenIssuer:
    """OAuth2 client-credentials tokens; expiry runs on wall-clock time."""

    def __init__(self, credentials: Credentials, ttl_seconds: int) -> None:
        self.credentials = credentials
        self.ttl = ttl_seconds
        self._tokens: dict[str, float] = {}

    def issue(self, request: Request) -> Response:
        """Answer a token request (form body or HTTP Basic)."""
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return json_response(401, {"error": "invalid_client"})
        if form.get("grant_type") != "client_credentials":
            return json_response(400, {"error": "unsupported_grant_type"})
        if (client_id, secret) != (self.credentials.client_id, self.credentials.client_secret):
            return json_response(401, {"error": "invalid_client"})
        token = secrets.token_urlsafe(24)
        self._tokens[token] = time.monotonic() + self.ttl
        return json_response(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.ttl})

    def check(self, request: Request) -> bool:
        """True when the request carries a known, unexpired bearer token."""
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return False
        expiry = self._tokens.get(auth[7:].strip())
        return expiry is not None and expiry > time.monotonic()

    def expire_all(self) -> None:
        """Expire every token now (tests of re-authentication)."""
        self._tokens = dict.fromkeys(self._tokens, 0.0)


class FhirApp:
    """ASGI app of one FHIR trust. ``transform`` rewrites each resource (RXK's quirks)."""

    def __init__(
        self,
        settings: SandboxSettings,
        state: TrustState,
        wire: FaultyWire,
        *,
        transform: Transform | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.wire = wire
        self.transform = transform
        self.limiter = limiter
        self.tokens = TokenIssuer(settings.credentials(state.trust), settings.token_ttl_seconds)
        self.base_url = ""  # set once the server is listening

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request."""
        if scope["type"] != "http":
            return
        request = await read_request(scope, receive)
        if request.path == "/oauth2/token" and request.method == "POST":
            await self.wire.send(send, request, self.tokens.issue(request), None)
            return
        if not request.path.startswith(FHIR_BASE):
            await self.wire.send(send, request, outcome(404, "not-found", f"no endpoint {request.path}"), None)
            return
        if request.path == FHIR_BASE + "/.well-known/smart-configuration":
            await self.wire.send(send, request, json_response(200, self._smart_configuration()), None)
            return
        if request.path == FHIR_BASE + "/metadata":
            await self.wire.send(send, request, json_response(200, self._capabilities(), content_type=FHIR_JSON), None)
            return
        if not self.tokens.check(request):
            response = outcome(
                401, "login", "a valid bearer token is required", {"www-authenticate": 'Bearer realm="sandbox"'}
            )
            await self.wire.send(send, request, response, None)
            return
        if self.limiter is not None and (retry := self.limiter.retry_after()) is not None:
            self.wire.plan.count("rate_limit_429")
            await self.wire.send(send, request, outcome(429, "throttled", "slow down", {"retry-after": retry}), None)
            return
        fault = await self.wire.before(receive)
        replaced = self.wire.error_response(fault) if fault is not None else None
        response = replaced or self.route(request, duplicate=fault is HttpFault.DUPLICATE)
        await self.wire.send(send, request, response, fault)

    # --- routing ------------------------------------------------------------------------------------
    def route(self, request: Request, *, duplicate: bool = False) -> Response:
        """Answer a FHIR GET (search, history or read)."""
        if request.method != "GET":
            return outcome(405, "not-supported", "this sandbox is read-only")
        parts = request.path[len(FHIR_BASE) :].strip("/").split("/")
        kind = KIND_OF_TYPE.get(parts[0])
        if kind is None:
            return outcome(404, "not-supported", f"resource type {parts[0]!r} is not served")
        try:
            if len(parts) == 1:
                return self._search(request, kind, duplicate=duplicate)
            if len(parts) == 2 and parts[1] == "_history":
                return self._history(request, kind)
            if len(parts) == 2:
                return self._read(kind, parts[1])
        except ValueError as exc:
            return outcome(400, "invalid", str(exc))
        return outcome(404, "not-found", f"no endpoint {request.path}")

    def _read(self, kind: str, record_id: str) -> Response:
        version = self.state.read(record_id)
        if version is None or version.kind != kind:
            return outcome(404, "not-found", f"{RESOURCE_TYPE[kind]}/{record_id} is not known")
        if version.record is None:
            return outcome(410, "deleted", f"{RESOURCE_TYPE[kind]}/{record_id} was deleted")
        return json_response(
            200, self._resource(version), content_type=FHIR_JSON, headers={"etag": f'W/"{version.version}"'}
        )

    def _search(self, request: Request, kind: str, *, duplicate: bool) -> Response:
        count = self._count(request)
        sort = request.param("_sort")
        if sort not in (None, "_lastUpdated"):
            raise ValueError(f"_sort={sort} is not supported (only _lastUpdated)")
        low, high = self._bounds(request.params("_lastUpdated"))
        cursor = request.param("_cursor")
        start = max(low, int(cursor)) if cursor is not None else low
        ids_only = request.param("_elements") == "id"
        versions, next_tick = take_page(self.state.current(kind, start), count, high)
        entries = [self._entry(kind, v, ids_only) for v in versions]
        if duplicate and entries:
            entries.append(entries[0])  # the same resource twice in one page
        return self._bundle("searchset", request, entries, next_tick)

    def _history(self, request: Request, kind: str) -> Response:
        count = self._count(request)
        since = request.param("_since")
        start = self.state.tick_at(parse_instant(since)) if since else 0
        cursor = request.param("_cursor")
        if cursor is not None:
            start = max(start, int(cursor))
        versions, next_tick = take_page(self.state.history(kind, start), count, None)
        entries: list[Json] = []
        for v in versions:
            url = f"{RESOURCE_TYPE[kind]}/{v.id}"
            if v.record is None:
                entries.append(
                    {
                        "fullUrl": self._full_url(kind, v.id),
                        "request": {"method": "DELETE", "url": url},
                        "response": {"status": "204"},
                    }
                )
            else:
                entries.append(
                    {
                        "fullUrl": self._full_url(kind, v.id),
                        "resource": self._resource(v),
                        "request": {"method": "POST" if v.version == 1 else "PUT", "url": url},
                        "response": {"status": "201" if v.version == 1 else "200"},
                    }
                )
        return self._bundle("history", request, entries, next_tick)

    # --- helpers ------------------------------------------------------------------------------------
    def _count(self, request: Request) -> int:
        raw = request.param("_count")
        if raw is None:
            return self.settings.default_page_size
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"_count must be a positive integer, got {raw!r}")
        return min(int(raw), self.settings.max_page_size)

    def _bounds(self, values: list[str]) -> tuple[int, int | None]:
        low, high = 0, None
        for value in values:
            prefix = value[:2] if value[:2] in _PREFIXES else "eq"
            tick = self.state.tick_at(parse_instant(value[2:] if value[:2] in _PREFIXES else value))
            if prefix == "gt":
                low = max(low, tick + 1)
            elif prefix == "ge":
                low = max(low, tick)
            elif prefix == "lt":
                high = tick - 1 if high is None else min(high, tick - 1)
            elif prefix == "le":
                high = tick if high is None else min(high, tick)
            else:
                raise ValueError("_lastUpdated supports the prefixes gt, ge, lt and le")
        return low, high

    def _resource(self, version: Version) -> Json:
        assert version.record is not None
        resource = to_fhir(version.record, self.state.trust, version.version, self.state.instant(version.tick))
        return self.transform(resource) if self.transform else resource

    def _entry(self, kind: str, version: Version, ids_only: bool) -> Json:
        if ids_only:
            resource: Json = {
                "resourceType": RESOURCE_TYPE[kind],
                "id": version.id,
                "meta": {
                    "tag": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
                    ]
                },
            }
        else:
            resource = self._resource(version)
        return {"fullUrl": self._full_url(kind, version.id), "resource": resource, "search": {"mode": "match"}}

    def _full_url(self, kind: str, record_id: str) -> str:
        return f"{self.base_url}{FHIR_BASE}/{RESOURCE_TYPE[kind]}/{record_id}"

    def _bundle(self, kind: str, request: Request, entries: list[Json], next_tick: int | None) -> Response:
        links: list[Json] = [{"relation": "self", "url": f"{self.base_url}{request.target}"}]
        if next_tick is not None:
            query = [(k, v) for k, v in request.query if k != "_cursor"] + [("_cursor", str(next_tick))]
            links.append({"relation": "next", "url": f"{self.base_url}{request.path}?{urlencode(query)}"})
        bundle = {
            "resourceType": "Bundle",
            "type": kind,
            "meta": {"lastUpdated": instant(self.state.instant(self.state.end_tick))},
            "link": links,
            "entry": entries,
        }
        return json_response(200, bundle, content_type=FHIR_JSON)

    def _capabilities(self) -> Json:
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "date": instant(self.settings.now),
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        {
                            "type": t,
                            "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "history-type"}],
                            "searchParam": [{"name": "_lastUpdated", "type": "date"}, {"name": "_id", "type": "token"}],
                        }
                        for t in sorted(KIND_OF_TYPE)
                    ],
                }
            ],
        }

    def _smart_configuration(self) -> Json:
        """SMART App Launch discovery: where clients get tokens (client credentials only here)."""
        return {
            "token_endpoint": f"{self.base_url}/oauth2/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "capabilities": ["client-confidential-symmetric"],
        }
