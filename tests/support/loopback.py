"""Loopback servers for black-box tests: serve any ASGI app on a free port, and a proxy that breaks one rule.

``BreakingProxy`` forwards every request to an upstream server and lets a test rewrite the request before it
goes and the answer before it comes back, so one deliberate deviation is injected into an otherwise correct
target (URLs in bodies and headers are rewritten so next links keep pointing at the proxy, and the proxy's URLs in a
request's parameters are rewritten to the upstream's, as a rewriting reverse proxy does).
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio
import httpx
import orjson
import pytest
import uvicorn

from bcconnect.api import make_server
from bcconnect.cli.serve_cmd import serve_api
from bcconnect.config import Settings
from bcconnect.store import Store

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class _QuietServer(uvicorn.Server):
    """uvicorn inside a test task: signals stay the test runner's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def free_port() -> int:
    """A TCP port nobody listens on now (loopback); two clones at once each get their own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for_listener(port: int, *, seconds: float = 20) -> None:
    """Return once something accepts TCP connections on 127.0.0.1:``port`` (a server started in another task)."""
    with anyio.fail_after(seconds):
        while True:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.05)
                continue
            await stream.aclose()
            return


@contextlib.contextmanager
def serving_in_thread(settings: Callable[[int], Settings]) -> Iterator[str]:
    """The API (``make_server``, as ``bcconnect serve`` runs it) in a thread on a free loopback port, for
    synchronous clients; ``settings`` gets the port. Yields the FHIR base URL; stops the server afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue here until uvicorn accepts them: no need to wait for start-up
    port = int(sock.getsockname()[1])
    server = make_server(settings(port))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/fhir"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
    assert not thread.is_alive()


@asynccontextmanager
async def serving_bcconnect(
    settings: Settings, store: Store, *, read_store: Store | None = None, allow_no_auth: bool = False
) -> AsyncIterator[str]:
    """``bcconnect serve``'s own wiring in-process (uvicorn on ``settings.api.port``); yields its root URL."""
    ready = anyio.Event()

    async def on_ready() -> None:
        ready.set()

    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: serve_api(
                settings, store=store, read_store=read_store, allow_no_auth=allow_no_auth, on_ready=on_ready
            )
        )
        with anyio.fail_after(30):
            await ready.wait()
        yield f"http://127.0.0.1:{settings.api.port}"
        group.cancel_scope.cancel()


@asynccontextmanager
async def serve(app: App) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) for the block; yields ``http://127.0.0.1:PORT``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _QuietServer(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    done = anyio.Event()

    async def run() -> None:
        try:
            await server.serve([sock])
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(15):
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes readiness only as a flag
                await anyio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            with anyio.move_on_after(3, shield=True):
                await done.wait()
            tg.cancel_scope.cancel()


@dataclass
class Exchange:
    """A request on its way through the proxy, and (after) its answer; mutations edit these in place."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)

    def json(self) -> Any:
        return orjson.loads(self.response_body) if self.response_body else None

    def set_json(self, value: Any) -> None:
        self.response_body = orjson.dumps(value)


@dataclass
class Mutation:
    """One deliberate deviation: ``before`` edits the request (or answers it by setting ``status``)."""

    name: str
    before: Callable[[Exchange], None] | None = None
    #: may be async (a repair that fetches from upstream: ``await proxy.fetch(path)``)
    after: Callable[[Exchange], Awaitable[None] | None] | None = None


class BreakingProxy:
    """An ASGI app forwarding to ``upstream`` with :attr:`mutation` applied (None: a faithful proxy)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.public = ""  # set once served
        self.mutation: Mutation | None = None
        self.client = httpx.AsyncClient(timeout=30)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        headers.pop("host", None)
        query = [
            (k, v.replace(self.public, self.upstream))
            for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        ]
        ex = Exchange(scope["method"], scope["path"], query, headers, body)
        mutation = self.mutation
        if mutation and mutation.before:
            mutation.before(ex)
        if not ex.status:
            url = f"{self.upstream}{ex.path}" + (f"?{urlencode(ex.query)}" if ex.query else "")
            # keep encodings as sent: a gzip answer passes through untouched
            request = self.client.build_request(ex.method, url, headers=ex.headers, content=ex.body or None)
            response = await self.client.send(request, stream=True)
            try:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
            ex.status = response.status_code
            ex.response_headers = {k.lower(): v for k, v in response.headers.items()}
            ex.response_body = raw
            if ex.response_headers.get("content-encoding") != "gzip":
                ex.response_body = raw.replace(self.upstream.encode(), self.public.encode())
            if "location" in ex.response_headers:
                ex.response_headers["location"] = ex.response_headers["location"].replace(self.upstream, self.public)
        if mutation and mutation.after:
            result = mutation.after(ex)
            if inspect.isawaitable(result):
                await result
        ex.response_headers.pop("content-length", None)
        ex.response_headers.pop("transfer-encoding", None)
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in ex.response_headers.items()]
        out.append((b"content-length", str(len(ex.response_body)).encode()))
        await send({"type": "http.response.start", "status": ex.status, "headers": out})
        await send({"type": "http.response.body", "body": ex.response_body})


async def fetch_json(proxy: BreakingProxy, path: str, headers: dict[str, str]) -> Any:
    """GET ``path`` from the proxy's upstream (for repairs); None unless 200."""
    response = await proxy.client.get(f"{proxy.upstream}{path}", headers=headers)
    return response.json() if response.status_code == 200 else None


@asynccontextmanager
async def breaking_proxy(upstream: str) -> AsyncIterator[BreakingProxy]:
    """A :class:`BreakingProxy` in front of ``upstream``, served on loopback."""
    proxy = BreakingProxy(upstream)
    try:
        async with serve(proxy) as public:
            proxy.public = public
            yield proxy
    finally:
        await proxy.client.aclose()


def wait_until_serving(url: str, process: subprocess.Popen[bytes], *, seconds: float = 120) -> None:
    """Poll ``url`` until it answers 200 while ``process`` (a ``bcconnect serve``) is alive; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve exited early"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} never answered 200")
