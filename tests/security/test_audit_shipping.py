"""Shipping closed audit segments to a log service, against real loopback receivers: a tiny RFC 5424 syslog
receiver over TCP (octet counting) and an HTTP collector. Each segment arrives whole with its signed checkpoint
and verifies on its own at the receiver; a receiver that is down is retried after a backoff and gets it once it is
up; a crash mid-send is sent again and recorded, never silently; retention drops nothing not yet shipped."""

from __future__ import annotations

import argparse
import re
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bcconnect.cli import security_cmd
from bcconnect.errors import UsageError
from bcconnect.security import (
    AuditAnchor,
    HttpSink,
    Shipment,
    SyslogTcpSink,
    prune_audit_trail,
    ship_closed_segments,
    shipments,
    verify_audit_export,
)
from bcconnect.security._audit_writer import AuditWriter
from bcconnect.store import Store, open_store
from support.loopback import free_port

pytestmark = pytest.mark.anyio
FRAME = re.compile(rb"(\d+) ")
SYSLOG_HEADER = re.compile(
    rb"^<110>1 (?P<stamp>\S+) (?P<host>\S+) bcconnect (?P<pid>\d+) (?P<msgid>audit-event|audit-checkpoint)"
    rb' \[bcconnect@32473 segment="(?P<segment>[^"]+)" link="(?P<link>\d+)" first="\d+" last="\d+"'
    rb' attempt="(?P<attempt>\d+)"\] \xef\xbb\xbf(?P<msg>.*)$',
    re.DOTALL,
)


@dataclass
class SyslogReceiver:
    """Reads octet-counted RFC 5424 frames until the sender's end of stream, then closes (its confirmation)."""

    port: int
    messages: list[bytes] = field(default_factory=list)
    _server: socket.socket | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        server = socket.create_server(("127.0.0.1", self.port))
        server.settimeout(0.2)
        self._server = server
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _serve(self) -> None:
        while self._server is not None:
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                self.messages += _frames(data)


def _frames(data: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        match = FRAME.match(data, at)
        assert match is not None, f"not octet-counted at byte {at}"
        size = int(match[1])
        out.append(data[match.end() : match.end() + size])
        at = match.end() + size
    return out


@dataclass
class HttpCollector:
    """A generic log collector: stores each POSTed body with its headers; can be told to fail."""

    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200

    @contextmanager
    def running(self) -> Iterator[str]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if collector.status < 300:
                    collector.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(collector.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/ingest/audit"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


class ProcessDied(BaseException):
    """Stands for the process being killed: nothing after it runs (not an Exception any handler would catch)."""


@dataclass
class World:
    store: Store
    anchor: AuditAnchor
    writer: AuditWriter
    folder: Path


@pytest.fixture
async def world(store_url: str, tmp_path: Path) -> AsyncIterator[World]:
    """One writer's closed segment of 5 events (closed when its process stopped) and its open successor of 2."""
    anchor = AuditAnchor(tmp_path / "anchor")
    async with open_store(store_url) as store:
        writer = AuditWriter(store, anchor=anchor)
        for n in range(5):
            await writer.append(lambda tx, n=n: (_event(f"first-{n}"), ["Patient/p1"]))
        await writer.close()
        for n in range(2):
            await writer.append(lambda tx, n=n: (_event(f"second-{n}"), ["Patient/p1"]))
        yield World(store, anchor, writer, tmp_path)


def _event(event_id: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"resourceType": "AuditEvent", "id": event_id, "recorded": now}


def _verify_received(lines: list[bytes], anchor: AuditAnchor, folder: Path) -> int:
    """What the receiver holds checks out on its own: every link, and the last against the signed checkpoint."""
    *events, trailer = lines
    assert orjson.loads(trailer)["checkpoint"]["final"] is True
    received = folder / "received.ndjson"
    received.write_bytes(b"\n".join(events) + b"\n")
    report = verify_audit_export(received, anchor.checkpoints())
    assert report.ok, report
    return report.events


async def _state(store: Store) -> list[Shipment]:
    return await store.read(shipments)


async def test_a_closed_segment_reaches_a_syslog_receiver_after_it_comes_up(world: World) -> None:
    port = free_port()
    sink = SyslogTcpSink("127.0.0.1", port, timeout=5)
    start = datetime.now(UTC)
    # the receiver is down: the attempt fails, is recorded, and waits out its backoff
    report = await ship_closed_segments(world.store, world.anchor, sink, retry_seconds=30, now=start)
    assert (len(report.shipped), len(report.failed)) == (0, 1)
    (failed,) = await _state(world.store)
    assert (failed.state, failed.attempts, failed.first_link, failed.last_link) == ("failed", 1, 1, 5)
    assert failed.last_error
    assert failed.next_attempt_at > start.isoformat()[:19]
    receiver = SyslogReceiver(port)
    receiver.start()
    try:
        # still inside the backoff: nothing is sent
        soon = await ship_closed_segments(world.store, world.anchor, sink, now=start + timedelta(seconds=5))
        assert (soon.shipped, soon.failed) == ((), ())
        later = await ship_closed_segments(world.store, world.anchor, sink, now=start + timedelta(seconds=31))
        assert len(later.shipped) == 1
    finally:
        receiver.stop()
    (shipped,) = await _state(world.store)
    assert (shipped.state, shipped.attempts, shipped.unconfirmed) == ("shipped", 2, 0)
    parsed = [SYSLOG_HEADER.match(m) for m in receiver.messages]
    assert all(parsed), receiver.messages[:1]
    assert [p["msgid"] for p in parsed if p] == [b"audit-event"] * 5 + [b"audit-checkpoint"]
    assert {p["attempt"] for p in parsed if p} == {b"2"}
    assert [p["link"] for p in parsed if p] == [b"1", b"2", b"3", b"4", b"5", b"5"]
    assert _verify_received([p["msg"] for p in parsed if p], world.anchor, world.folder) == 5
    # shipped once: another round sends nothing (the open segment is not closed yet)
    again = await ship_closed_segments(world.store, world.anchor, sink, now=start + timedelta(seconds=60))
    assert (again.shipped, again.failed) == ((), ())


async def test_a_closed_segment_is_posted_to_an_http_collector_after_it_recovers(world: World) -> None:
    collector = HttpCollector(status=503)
    with collector.running() as url:
        sink = HttpSink(url, authorization="Bearer collector-token", timeout=5)
        start = datetime.now(UTC)
        first = await ship_closed_segments(world.store, world.anchor, sink, retry_seconds=10, now=start)
        assert len(first.failed) == 1
        assert "HTTP 503" in str((await _state(world.store))[0].last_error)
        collector.status = 200
        second = await ship_closed_segments(world.store, world.anchor, sink, now=start + timedelta(seconds=11))
        assert len(second.shipped) == 1
    ((headers, body),) = collector.posts
    assert headers["content-type"] == "application/x-ndjson"
    assert headers["authorization"] == "Bearer collector-token"
    assert headers["idempotency-key"].endswith(":1-5")
    assert headers["x-audit-attempt"] == "2"
    assert _verify_received(body.splitlines(), world.anchor, world.folder) == 5


async def test_a_crash_mid_send_is_sent_again_and_recorded(world: World) -> None:
    """The process dies after claiming (the send's outcome never recorded): once the claim's lease runs out the
    segment is sent again, and the store says it may be at the receiver twice (same key, higher attempt)."""
    collector = HttpCollector()
    with collector.running() as url:
        sink = HttpSink(url, timeout=5)
        start = datetime.now(UTC)

        class DiesMidSend(HttpSink):
            async def send(self, segment: Any) -> None:
                await HttpSink.send(self, segment)  # delivered …
                raise ProcessDied  # … and the process dies before recording it

        dying = DiesMidSend(url, timeout=5, name=sink.name)
        with pytest.raises(ProcessDied):
            await ship_closed_segments(world.store, world.anchor, dying, now=start)
        (claimed,) = await _state(world.store)
        assert (claimed.state, claimed.attempts) == ("sending", 1)
        # another process, while the claim's lease holds: it leaves the segment alone
        during = await ship_closed_segments(world.store, world.anchor, sink, now=start + timedelta(seconds=1))
        assert during.shipped == ()
        after = await ship_closed_segments(world.store, world.anchor, sink, now=start + timedelta(seconds=120))
        assert len(after.shipped) == 1
        assert len(after.resent_unconfirmed) == 1
    (shipped,) = await _state(world.store)
    assert (shipped.state, shipped.attempts, shipped.unconfirmed) == ("shipped", 2, 1)
    keys = [h["idempotency-key"] for h, _ in collector.posts]
    assert len(keys) == 2
    assert len(set(keys)) == 1
    assert [h["x-audit-attempt"] for h, _ in collector.posts] == ["1", "2"]


async def test_retention_keeps_a_closed_segment_until_it_is_shipped(world: World) -> None:
    sink = SyslogTcpSink("127.0.0.1", free_port(), timeout=2)
    cut = (datetime.now(UTC) + timedelta(days=62)).isoformat()
    with pytest.raises(ValueError, match="not yet shipped"):
        await prune_audit_trail(
            world.store, world.anchor, recorded_before=cut, export_dir=world.folder / "exp", shipped_to=sink.name
        )
    receiver = SyslogReceiver(sink.port)
    receiver.start()
    try:
        assert len((await ship_closed_segments(world.store, world.anchor, sink)).shipped) == 1
    finally:
        receiver.stop()
    await world.writer.close()  # the second segment too (closed, and shipped before it may be dropped)
    with pytest.raises(ValueError, match="not yet shipped"):
        await prune_audit_trail(
            world.store, world.anchor, recorded_before=cut, export_dir=world.folder / "exp", shipped_to=sink.name
        )


def _cli(config: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bcconnect")
    parser.add_argument("--config")
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--log-format", default=None)
    security_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["--config", str(config), "--log-format", "json", *argv])
    code: int = args.handler(args)
    return code


def test_audit_maintain_closes_an_idle_segment_and_ships_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The timer's command: a segment left open by a process that died a day ago is closed, signed and shipped;
    ``audit ship`` without a log service configured is one sentence (exit 2)."""
    store_url = f"sqlite:///{tmp_path / 'data' / 'bc.db'}"
    config = tmp_path / "bcconnect.toml"
    base = f'[store]\nurl = "{store_url}"\n[paths]\ndata_dir = "data"\n'
    config.write_text(base, encoding="utf-8")
    anchor = AuditAnchor(tmp_path / "data" / "audit-anchor")
    long_ago = datetime.now(UTC) - timedelta(days=2)

    async def died_mid_segment() -> None:
        async with open_store(store_url) as store:
            writer = AuditWriter(store, anchor=anchor, now=lambda: long_ago)
            for n in range(3):
                await writer.append(lambda tx, n=n: (_event(f"dead-{n}"), ["Patient/p1"]))
            # the process dies here: its segment stays open; make its last write a day old
            stale = long_ago.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            await store.write(lambda tx: tx.execute("UPDATE audit_chains SET written_at = ?", (stale,)))

    anyio.run(died_mid_segment)
    with pytest.raises(UsageError, match="ship_url"):
        _cli(config, "audit", "ship")
    collector = HttpCollector()
    with collector.running() as url:
        config.write_text(base + f'[audit]\nship_url = "{url}"\n', encoding="utf-8")
        assert _cli(config, "audit", "maintain") == 0
    out = capsys.readouterr().out
    assert "closed 1 idle segment(s)" in out
    assert "shipped segment" in out
    ((_, body),) = collector.posts
    assert _verify_received(body.splitlines(), anchor, tmp_path) == 3
    assert _cli(config, "audit", "verify") == 0
