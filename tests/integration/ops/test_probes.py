"""``/healthz`` and ``/readyz``: cheap, unaudited, and ``/readyz`` fails when the store is down.

"Down" is real: the engine reaches PostgreSQL through a loopback TCP relay the test cuts, so the pool's
connections break exactly as they would when the database host goes away.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc
import pytest

from bcconnect.api import create_app
from bcconnect.config import Settings
from bcconnect.ops import OpsApp, ReadinessCheck, readiness_checks
from bcconnect.security import count_audit_events
from bcconnect.store import open_store
from bcconnect.view import View

from .conftest import no_auth_settings, serving

pytestmark = pytest.mark.anyio


class Relay:
    """A loopback TCP relay to ``target``: ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._group: anyio.abc.TaskGroup | None = None
        self._listener: anyio.abc.SocketListener | None = None

    async def _pipe(self, source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream) -> None:
        try:
            async for chunk in source:
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            await sink.aclose()

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        async with client, await anyio.connect_tcp(*self.target) as upstream, anyio.create_task_group() as pipes:
            pipes.start_soon(self._pipe, client, upstream)
            pipes.start_soon(self._pipe, upstream, client)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Relay]:
        async with anyio.create_task_group() as group:
            self._group = group
            await self.start()
            yield self
            group.cancel_scope.cancel()

    async def start(self) -> None:
        assert self._group is not None
        self._listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        self.port = self._listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
        self._scope = anyio.CancelScope()
        listener, scope = self._listener, self._scope

        async def serve() -> None:
            with scope:
                try:
                    async with anyio.create_task_group() as handlers:
                        await listener.serve(self._handle, task_group=handlers)
                except* anyio.ClosedResourceError:
                    pass  # cut() closed the listener

        self._group.start_soon(serve)

    async def cut(self) -> None:
        self._scope.cancel()
        assert self._listener is not None
        await self._listener.aclose()
        await anyio.sleep(0.1)


async def test_healthz_is_alive_and_readyz_reports_each_check(tmp_path: Path, store_url: str) -> None:
    """Both probes answer without a token, and neither writes an AuditEvent."""
    async with open_store(store_url) as store, serving(no_auth_settings(tmp_path), store) as client:
        events_before = await store.read(count_audit_events)
        alive = await client.get("/healthz")
        assert alive.status_code == 200
        assert alive.json() == {"status": "alive"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"keys": "ok", "migrations": "ok", "store": "ok"}}
        assert (await client.post("/readyz")).status_code == 405
        assert await store.read(count_audit_events) == events_before


async def test_readyz_fails_on_a_failing_check_and_says_which(store_url: str) -> None:
    """Any failing check makes the whole probe 503, naming the check and its reason (the guard can fail)."""
    import httpx

    async def broken() -> None:
        raise RuntimeError("issuer keys unreachable")

    async with open_store(store_url) as store:
        app = OpsApp(
            create_app(Settings(), View(store)),
            metrics_settings=Settings().metrics,
            checks=[*readiness_checks(store), ReadinessCheck("keys", broken)],
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            answer = await client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"] == {"keys": "issuer keys unreachable", "migrations": "ok", "store": "ok"}


async def test_readyz_reports_pending_migrations(tmp_path: Path) -> None:
    """A database this code has not migrated is not ready (an engine must never serve a schema it does not know)."""
    import httpx

    url = f"sqlite:///{tmp_path / 'old.db'}"
    async with open_store(url, migrate=False) as store:
        app = OpsApp(
            create_app(Settings(), View(store)), metrics_settings=Settings().metrics, checks=readiness_checks(store)
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            answer = await client.get("/readyz")
    assert answer.status_code == 503
    assert "not applied" in answer.json()["checks"]["migrations"]


@pytest.mark.postgres
async def test_readyz_fails_when_postgresql_goes_away(tmp_path: Path) -> None:
    """Cut the network to PostgreSQL: /readyz turns 503 within its timeout, /healthz stays 200, and /metrics
    still answers (with the store marked down)."""
    base = os.environ.get("BCCONNECT_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("BCCONNECT_TEST_POSTGRES_URL is not set (scripts/test-postgres start prints one)")
    parts = urlsplit(base)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    async with relay.running():
        netloc = f"{parts.username}@127.0.0.1:{relay.port}" if parts.username else f"127.0.0.1:{relay.port}"
        relayed = urlunsplit(parts._replace(netloc=netloc))
        settings = replace(no_auth_settings(tmp_path))
        async with open_store(relayed) as store, serving(settings, store) as client:
            assert (await client.get("/readyz")).status_code == 200
            await relay.cut()
            down = await client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["checks"]["store"] != "ok"
            assert (await client.get("/healthz")).status_code == 200  # alive, just not ready
            metrics = await client.get("/metrics")
            assert "bcconnect_store_up 0.0" in metrics.text
