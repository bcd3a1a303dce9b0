"""The ASGI app of the web pages under ``/app/``: routing, sign-in, audit, errors, security headers.

A page is a :class:`Page` (path pattern, title, what it reads, an async ``render``). The app authenticates each
request through its :class:`PageGuard` (a bearer token in the ``Authorization`` header, or the HttpOnly cookie the
sign-in form sets), admits it for the resource types the page reads, renders it, and has the guard record an
AuditEvent for it — refused requests included — before the response leaves.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from bcconnect.app._html import Markup, html, tag, url
from bcconnect.app._layout import NavItem, layout
from bcconnect.app._style import STYLESHEET
from bcconnect.errors import (
    Forbidden,
    InvalidRequest,
    MethodNotAllowed,
    NotAuthenticated,
    RequestError,
    ResourceGone,
    ResourceNotFound,
    TooManyRequests,
)
from bcconnect.logging import get_logger
from bcconnect.view import OPEN_ACCESS, AccessContext

log = get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: the cookie the sign-in form sets (HttpOnly, SameSite=Strict, scoped to the pages' prefix)
TOKEN_COOKIE = "bcconnect_app_token"  # noqa: S105 - a cookie name, not a secret
#: the largest form body accepted (the sign-in form: one token)
MAX_FORM_BYTES = 32_768
#: security headers on every page: no scripts at all, nothing framed, nothing cached (clinical data)
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One request to the pages: the path below the prefix, query pairs, lower-case headers, the form (POST)."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    client: str | None = None
    scheme: str = "http"
    form: Mapping[str, str] = field(default_factory=dict)

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter (blank counts as absent)."""
        return next((v for k, v in self.query if k == name and v != ""), default)

    def header(self, name: str) -> str | None:
        """A header by name (case-insensitive)."""
        return self.headers.get(name.lower())


@dataclass(slots=True)
class PageContext:
    """What a page's ``render`` gets: the request, the caller, the path parameters, and where to note patients."""

    request: PageRequest
    access: AccessContext
    prefix: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    #: ids of the Patients whose data the page shows (each goes on the page view's AuditEvent)
    patients: set[str] = field(default_factory=set)

    def href(self, path: str, **query: object) -> str:
        """A link to another page: ``ctx.href("/worklist", network="ENT")``."""
        return url(f"{self.prefix}{path}", **query)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered page body; ``title`` overrides the page's own (e.g. a person's name)."""

    body: Markup
    title: str | None = None


Render = Callable[[PageContext], Awaitable[Rendered]]


@dataclass(frozen=True, slots=True)
class Page:
    """One page: ``path`` below the prefix (``{name}`` segments become path parameters).

    ``resource_types`` are the FHIR types the page reads: the caller needs search permission on each, as the FHIR
    endpoint would ask. ``nav`` puts the page in the navigation bar under that label; ``description`` is shown on
    the start page.
    """

    path: str
    title: str
    render: Render
    resource_types: tuple[str, ...] = ()
    nav: str | None = None
    description: str = ""


class PageGuard(Protocol):
    """Authentication, authorisation and audit for the pages (the security layer plugs in here)."""

    async def admit(
        self, request: PageRequest, authorization: str | None, resource_types: Sequence[str]
    ) -> AccessContext:
        """The caller (401, 429) if allowed to read every one of ``resource_types`` (403 otherwise)."""
        ...

    async def record(
        self, request: PageRequest, access: AccessContext | None, status: int, patients: frozenset[str]
    ) -> None:
        """Write the AuditEvent of this page request durably (called for every request, refused ones too)."""
        ...


class OpenGuard:
    """Everyone is the anonymous open caller; nothing is recorded (development and unit tests only)."""

    async def admit(
        self, request: PageRequest, authorization: str | None, resource_types: Sequence[str]
    ) -> AccessContext:
        """Always the open context."""
        return OPEN_ACCESS

    async def record(
        self, request: PageRequest, access: AccessContext | None, status: int, patients: frozenset[str]
    ) -> None:
        """Nothing."""


@dataclass(slots=True)
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/html; charset=utf-8"


def _compile(path: str) -> re.Pattern[str]:
    pattern = re.sub(r"\{([a-z_]+)\}", r"(?P<\1>[A-Za-z0-9\\-._]{1,128})", path.rstrip("/") or "/")
    return re.compile(f"^{pattern}/?$")


class PagesApp:
    """The ASGI app serving ``pages`` below ``prefix`` (default ``/app``) with ``guard`` in front of each."""

    def __init__(self, pages: Sequence[Page], *, guard: PageGuard | None = None, prefix: str = "/app") -> None:
        self.prefix = "/" + prefix.strip("/")
        self.guard: PageGuard = guard or OpenGuard()
        self.pages = [_home_page(self), *pages]
        self._routes = [(_compile(p.path), p) for p in self.pages]
        self.nav = [NavItem(p.nav, p.path) for p in self.pages if p.nav]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request = _request(scope, self.prefix)
        if request.method == "POST":
            request = await _with_form(request, receive)
        response = await self._respond(request)
        await _send(send, response, head=request.method == "HEAD")
        log.info(
            "page_request",
            method=request.method,
            path=request.path.split("?")[0][:80],
            status=response.status,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )

    async def _respond(self, request: PageRequest) -> _Response:
        if request.path == "/static/app.css":
            return _Response(
                200,
                STYLESHEET.encode(),
                {"cache-control": "public, max-age=31536000, immutable"},
                "text/css; charset=utf-8",
            )
        if request.path == "/login":
            return await self._login(request)
        if request.path == "/logout":
            return self._logout(request)
        if request.method not in ("GET", "HEAD"):
            return self._error(request, MethodNotAllowed(f"{request.method} is not allowed here: pages are read-only"))
        for pattern, page in self._routes:
            found = pattern.match(request.path)
            if found:
                return await self._page(request, page, found.groupdict())
        return self._error(request, ResourceNotFound("there is no page at this address"), status=404)

    async def _page(self, request: PageRequest, page: Page, params: Mapping[str, str]) -> _Response:
        access: AccessContext | None = None
        ctx: PageContext | None = None
        try:
            access = await self.guard.admit(request, _authorization(request), page.resource_types)
            ctx = PageContext(request, access, self.prefix, params)
            rendered = await page.render(ctx)
            document = layout(
                rendered.title or page.title,
                rendered.body,
                prefix=self.prefix,
                nav=self.nav,
                current=page.path,
                user=None if access.anonymous and access.user == "anonymous" else access.user,
                organisation=access.organisation,
            )
            response = _Response(200, document.encode())
        except NotAuthenticated as exc:
            response = self._sign_in_needed(request, exc)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error page (and is audited)
            response = self._error(request, exc, access=access)
        patients = frozenset(ctx.patients) if ctx is not None and response.status < 400 else frozenset()
        try:
            await self.guard.record(request, access, response.status, patients)
        except Exception as exc:  # noqa: BLE001 - a page view that cannot be audited is not shown
            log.error("page_audit_failed", error=type(exc).__name__)
            response = self._error(request, exc)
        return response

    def _sign_in_needed(self, request: PageRequest, exc: NotAuthenticated) -> _Response:
        if request.header("authorization"):
            # a programmatic caller that sent a bad token: a plain 401, no redirect
            return self._error(request, exc, status=401, headers={"www-authenticate": 'Bearer error="invalid_token"'})
        target = url(f"{self.prefix}/login", next=f"{self.prefix}{request.path}" + _query_suffix(request))
        headers = {"location": target}
        if _cookie(request):  # the cookie's token is no longer good (expired): drop it
            headers["set-cookie"] = self._cookie_header("", request, clear=True)
        return _Response(303, b"", headers)

    async def _login(self, request: PageRequest) -> _Response:
        next_path = _safe_next(request.form.get("next") or request.param("next"), self.prefix)
        if request.method in ("GET", "HEAD"):
            return _Response(200, self._login_form(next_path, None).encode())
        if request.method != "POST":
            return self._error(request, MethodNotAllowed("sign in with GET (the form) or POST (the token)"))
        if not _same_origin(request):
            return self._error(request, Forbidden("the sign-in form was posted from another site"), status=403)
        token = request.form.get("token", "").strip()
        access: AccessContext | None = None
        status = 303
        try:
            if not token:
                raise NotAuthenticated("enter an access token")
            access = await self.guard.admit(request, f"Bearer {token}", ())
        except (NotAuthenticated, TooManyRequests) as exc:
            status = 429 if isinstance(exc, TooManyRequests) else 401
            await self.guard.record(request, None, status, frozenset())
            return _Response(status, self._login_form(next_path, str(exc)).encode())
        await self.guard.record(request, access, status, frozenset())
        return _Response(303, b"", {"location": next_path, "set-cookie": self._cookie_header(token, request)})

    def _logout(self, request: PageRequest) -> _Response:
        if request.method != "POST":
            return self._error(request, MethodNotAllowed("sign out with the button (POST)"))
        return _Response(
            303,
            b"",
            {"location": f"{self.prefix}/login", "set-cookie": self._cookie_header("", request, clear=True)},
        )

    def _cookie_header(self, token: str, request: PageRequest, *, clear: bool = False) -> str:
        secure = "; Secure" if request.scheme == "https" else ""
        expiry = "; Max-Age=0" if clear else ""
        return f"{TOKEN_COOKIE}={token}; Path={self.prefix}; HttpOnly; SameSite=Strict{secure}{expiry}"

    def _login_form(self, next_path: str, problem: str | None) -> str:
        error = (
            tag("div", tag("p", tag("strong", "Sign-in failed: "), problem), class_="panel warning", role="alert")
            if problem
            else None
        )
        form = tag(
            "form",
            tag("label", "Access token", for_="token"),
            tag(
                "p",
                "Paste the bearer token your organisation issued for this service "
                "(the same token the FHIR endpoint takes).",
                class_="muted",
                id="token-hint",
            ),
            tag(
                "input",
                type="password",
                id="token",
                name="token",
                autocomplete="off",
                required=True,
                aria_describedby="token-hint",
            ),
            tag("input", type="hidden", name="next", value=next_path),
            tag("p", tag("button", "Sign in", type="submit")),
            method="post",
            action=f"{self.prefix}/login",
            class_="panel",
        )
        return layout("Sign in", html("{}{}", error, form), prefix=self.prefix)

    def _error(
        self,
        request: PageRequest,
        exc: BaseException,
        *,
        status: int | None = None,
        access: AccessContext | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Response:
        code = status or _status_of(exc)
        if code >= 500:
            log.error("page_failed", error=type(exc).__name__, path=request.path[:80])
            message = "Something went wrong on our side. The error has been logged; try again later."
        else:
            message = str(exc)
        body = tag("div", tag("p", message), class_="panel warning", role="alert")
        document = layout(
            _TITLES.get(code, "Error"),
            body,
            prefix=self.prefix,
            nav=self.nav if access is not None else (),
            user=access.user if access is not None and not access.anonymous else None,
        )
        return _Response(code, document.encode(), dict(headers or {}))


_TITLES = {
    400: "Check your request",
    401: "Sign in needed",
    403: "You do not have access to this page",
    404: "Page not found",
    405: "Not allowed",
    410: "No longer available",
    429: "Too many requests",
}


def _status_of(exc: BaseException) -> int:
    for kind, code in (
        (InvalidRequest, 400),
        (NotAuthenticated, 401),
        (Forbidden, 403),
        (ResourceNotFound, 404),
        (MethodNotAllowed, 405),
        (ResourceGone, 410),
        (TooManyRequests, 429),
    ):
        if isinstance(exc, kind):
            return code
    return 400 if isinstance(exc, RequestError) and exc.category.value == "incorrect" else 500


def _home_page(app: PagesApp) -> Page:
    async def render(ctx: PageContext) -> Rendered:
        items = [
            tag("li", tag("a", p.title, href=ctx.href(p.path)), " – ", p.description)
            for p in app.pages
            if p.nav and p.path != "/"
        ]
        intro = tag(
            "p",
            "Referral triage, the shared waiting list and the people behind them, across the four trusts. "
            "Every page you open is recorded in the audit trail.",
            class_="lede",
        )
        return Rendered(html("{}{}", intro, tag("ul", items)))

    return Page("/", "Shared care record", render, nav="Home", description="Start")


def _request(scope: Scope, prefix: str) -> PageRequest:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers and name != "cookie" else value
    path: str = scope.get("path", "/")
    below = path[len(prefix) :] or "/"
    query_text = scope.get("query_string", b"").decode("latin-1")
    client = scope.get("client")
    return PageRequest(
        method=scope["method"],
        path=below,
        query=tuple(parse_qsl(query_text, keep_blank_values=True, encoding="utf-8", errors="replace")),
        headers=headers,
        client=client[0] if client else None,
        scheme=scope.get("scheme", "http"),
    )


async def _with_form(request: PageRequest, receive: Receive) -> PageRequest:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return request  # an oversized form is treated as empty: sign-in then fails with a clear message
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    text = b"".join(chunks).decode("utf-8", errors="replace")
    form = dict(parse_qsl(text, keep_blank_values=True))
    return PageRequest(
        request.method, request.path, request.query, request.headers, request.client, request.scheme, form
    )


def _cookie(request: PageRequest) -> str | None:
    raw = request.header("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # noqa: BLE001 - a malformed cookie header counts as no cookie
        return None
    morsel = jar.get(TOKEN_COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _authorization(request: PageRequest) -> str | None:
    """The bearer credential: the Authorization header (programmatic callers) or the sign-in cookie (browsers)."""
    header = request.header("authorization")
    if header:
        return header
    token = _cookie(request)
    return f"Bearer {token}" if token else None


def _query_suffix(request: PageRequest) -> str:
    return url("", **dict(request.query)) if request.query else ""


def _safe_next(candidate: str | None, prefix: str) -> str:
    """Where to go after sign-in: only a path of these pages (never another site: no open redirect)."""
    if candidate and candidate.startswith(prefix + "/") and not candidate.startswith("//"):
        parts = urlsplit(candidate)
        if not parts.scheme and not parts.netloc and "\\" not in candidate:
            return candidate
    return prefix + "/"


def _same_origin(request: PageRequest) -> bool:
    """A POST's Origin (when the browser sends one) must be this host: a cross-site form cannot sign anyone in."""
    origin = request.header("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.header("host")


async def _send(send: Send, response: _Response, *, head: bool) -> None:
    headers = {**SECURITY_HEADERS, **response.headers}
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    if response.body:
        raw.append((b"content-type", response.content_type.encode()))
    raw.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else response.body})
