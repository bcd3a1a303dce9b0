"""Shipping closed audit segments to a log service (``[audit] ship_url``), at least once.

A closed segment (one writer's chain, sealed by a final signed checkpoint) is sent as NDJSON: one line per event —
chain, link, previous hash, hash and the AuditEvent exactly as hashed, the form ``audit prune`` exports — and a
last line carrying the signed checkpoint of its final event, so the receiver (or anyone reading the log service
later) can check every link and the end against the anchor's public key without the database.

Sinks:

- ``syslog+tcp://host:port`` — each line is one RFC 5424 message (facility 13 "log audit", severity 6, APP-NAME
  ``bcconnect``, MSGID ``audit-event`` or ``audit-checkpoint``, structured data naming segment, link and attempt),
  framed by octet counting (RFC 6587 §3.4.1) over TCP. Plain syslog has no acknowledgement, so a send counts as
  delivered only when the receiver has read to the end and closed the connection after our end-of-stream.
- ``http(s)://…`` — one ``POST`` per segment (``application/x-ndjson``) with ``Idempotency-Key: <segment>:<first>-
  <last>``, ``X-Audit-Segment`` and ``X-Audit-Attempt``; any 2xx confirms it.

At-least-once and never silent (``audit_shipments``): a segment is claimed (state ``sending``, attempts + 1, a
lease) in a committed transaction *before* anything is sent; a confirmed send marks it ``shipped``; a failed one
``failed`` with the next attempt after an exponential backoff. A claim whose lease runs out with no outcome (the
process died mid-send) is sent again and counted in ``unconfirmed``: the receiver may then hold it twice, which the
store records and the messages show (same idempotency key and links, a higher attempt number), so a crash neither
loses a segment nor duplicates it silently.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol
from urllib.parse import urlsplit

import anyio
import httpx
import orjson

from bcconnect.logging import get_logger
from bcconnect.security._anchor import AuditAnchor
from bcconnect.security._audit_store import audit_chain
from bcconnect.security._retention import chain_stretch
from bcconnect.store import Store, Tx

log = get_logger(__name__)

#: syslog facility 13 (log audit), severity 6 (informational): PRI = 13 * 8 + 6
SYSLOG_PRI = 110
#: the structured-data id's private enterprise number: 32473 is the one RFC 5612 reserves for documentation and
#: examples; an organisation with its own number should use it
SD_ID = "bcconnect@32473"
#: a claim's lease beyond the shipment's own time limit, before another process may take the segment over
_LEASE_MARGIN_SECONDS = 30.0


class ShipError(Exception):
    """A shipment was not confirmed (the sink is down, refused it, or did not confirm in time)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One closed segment on its way: its lines (events, then the signed checkpoint) and where it sits."""

    chain: str
    first: int
    last: int
    attempt: int
    lines: tuple[bytes, ...]

    @property
    def key(self) -> str:
        """What names this content at the receiver whatever the attempt (an idempotency key)."""
        return f"{self.chain}:{self.first}-{self.last}"


class Sink(Protocol):
    """Where segments go."""

    name: str

    async def send(self, segment: Segment) -> None:
        """Deliver the segment or raise :class:`ShipError`."""


def _sd_value(text: str) -> str:
    r"""An RFC 5424 SD-PARAM value: ``"``, ``\`` and ``]`` escaped.

    >>> _sd_value('a"b]c\\d')
    'a\\"b\\]c\\\\d'
    """
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_message(line: bytes, segment: Segment, *, hostname: str, procid: int) -> bytes:
    """One RFC 5424 message for one NDJSON line of a segment (without the octet-count frame).

    >>> seg = Segment("w-1", 1, 1, 1, ())
    >>> line = orjson.dumps({"seq": 1, "event": orjson.dumps({"recorded": "2026-12-01T10:00:00.000Z"}).decode()})
    >>> syslog_message(line, seg, hostname="h", procid=7)[:80]
    b'<110>1 2026-12-01T10:00:00.000Z h bcconnect 7 audit-event [bcconnect@32473 segme'
    """
    item = orjson.loads(line)
    if "checkpoint" in item:
        msgid, link, stamp = "audit-checkpoint", int(item["checkpoint"]["seq"]), str(item["checkpoint"]["at"])
    else:
        msgid, link = "audit-event", int(item["seq"])
        try:
            stamp = str(orjson.loads(item["event"]).get("recorded") or "-")
        except (orjson.JSONDecodeError, AttributeError):
            stamp = "-"
    data = (
        f'[{SD_ID} segment="{_sd_value(segment.chain)}" link="{link}" first="{segment.first}"'
        f' last="{segment.last}" attempt="{segment.attempt}"]'
    )
    header = f"<{SYSLOG_PRI}>1 {stamp} {hostname[:255] or '-'} bcconnect {procid} {msgid} {data} "
    return header.encode("ascii", "replace") + b"\xef\xbb\xbf" + line


@dataclass(slots=True)
class SyslogTcpSink:
    """RFC 5424 over TCP with octet counting; delivered once the receiver closes after our end-of-stream."""

    host: str
    port: int
    timeout: float = 30.0
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"syslog+tcp://{self.host}:{self.port}"

    async def send(self, segment: Segment) -> None:
        hostname, procid = socket.gethostname(), os.getpid()
        frames = b"".join(
            f"{len(m)} ".encode("ascii") + m
            for m in (syslog_message(line, segment, hostname=hostname, procid=procid) for line in segment.lines)
        )
        try:
            with anyio.fail_after(self.timeout):
                async with await anyio.connect_tcp(self.host, self.port) as stream:
                    await stream.send(frames)
                    await stream.send_eof()
                    # no acknowledgement in plain syslog: the receiver reading to our end and closing is the most a
                    # TCP sender can know (RELP would acknowledge each message)
                    while True:
                        try:
                            await stream.receive()
                        except anyio.EndOfStream:
                            return
        except TimeoutError:
            raise ShipError(f"{self.name} did not confirm within {self.timeout:g} s") from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise ShipError(f"{self.name}: {type(exc).__name__}: {exc}") from exc


@dataclass(slots=True)
class HttpSink:
    """One POST per segment to a collector; 2xx confirms."""

    url: str
    authorization: str | None = None
    timeout: float = 30.0
    name: str = ""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self.name = self.name or f"{parts.scheme}://{parts.netloc}{parts.path}"

    async def send(self, segment: Segment) -> None:
        headers = {
            "Content-Type": "application/x-ndjson",
            "Idempotency-Key": segment.key,
            "X-Audit-Segment": segment.chain,
            "X-Audit-Attempt": str(segment.attempt),
        }
        if self.authorization:
            headers["Authorization"] = self.authorization
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.url, content=b"\n".join(segment.lines) + b"\n", headers=headers)
        except httpx.HTTPError as exc:
            raise ShipError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise ShipError(f"{self.name} answered HTTP {response.status_code}")


def sink_from_url(url: str, *, authorization: str | None = None, timeout: float = 30.0) -> Sink:
    """The sink a ``[audit] ship_url`` names (ValueError for anything else)."""
    parts = urlsplit(url)
    if parts.scheme == "syslog+tcp":
        if not parts.hostname or not parts.port:
            raise ValueError(f"{url!r}: a syslog sink needs a host and a port (syslog+tcp://host:514)")
        return SyslogTcpSink(parts.hostname, parts.port, timeout)
    if parts.scheme in ("http", "https") and parts.hostname:
        return HttpSink(url, authorization, timeout)
    raise ValueError(f"{url!r} is not a log service bcconnect ships to (syslog+tcp:// or http(s)://)")


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Shipment:
    """One segment's shipping state for one sink."""

    chain: str
    sink: str
    state: str
    first_link: int
    last_link: int
    attempts: int
    unconfirmed: int
    next_attempt_at: str
    last_error: str | None
    shipped_at: str | None


_SHIPMENT_COLUMNS = (
    "chain, sink, state, first_link, last_link, attempts, unconfirmed, next_attempt_at, last_error, shipped_at"
)


def shipments(tx: Tx, sink: str | None = None) -> list[Shipment]:
    """Every shipment (of one sink), oldest segment first."""
    where, args = ("WHERE sink = ?", (sink,)) if sink else ("", ())
    rows = tx.query(f"SELECT {_SHIPMENT_COLUMNS} FROM audit_shipments {where} ORDER BY chain", args)  # noqa: S608
    return [
        Shipment(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]), str(r[7]),
                 None if r[8] is None else str(r[8]), None if r[9] is None else str(r[9]))
        for r in rows
    ]  # fmt: skip


def _enlist(tx: Tx, sink: str, now: str) -> int:
    """A shipment row (due now) for every closed segment with events that has none for this sink yet."""
    rows = tx.query(
        "INSERT INTO audit_shipments (chain, sink, state, first_link, last_link, last_hash, next_attempt_at)"
        " SELECT c.chain, ?, 'pending', c.base_link + 1, c.link, c.hash, ? FROM audit_chains c"
        " WHERE c.closed_at IS NOT NULL AND c.link > c.base_link AND NOT EXISTS"
        " (SELECT 1 FROM audit_shipments s WHERE s.chain = c.chain AND s.sink = ?)"
        " ON CONFLICT (chain, sink) DO NOTHING RETURNING chain",
        (sink, now, sink),
    )
    return len(rows)


def _claim(tx: Tx, sink: str, *, now: str, until: str, worker: str) -> tuple[Shipment, str, bool] | None:
    """Claim the next due shipment: (it, the hash of its last link, whether a previous attempt never ended)."""
    row = tx.query_one(
        "SELECT chain, state FROM audit_shipments WHERE sink = ? AND ("
        " (state IN ('pending', 'failed') AND next_attempt_at <= ?) OR (state = 'sending' AND claimed_until < ?))"
        " ORDER BY chain LIMIT 1",
        (sink, now, now),
    )
    if row is None:
        return None
    chain, previous = str(row[0]), str(row[1])
    abandoned = previous == "sending"
    # the state is checked again under the row's lock: of two processes claiming at once, one wins
    taken = tx.query(
        "UPDATE audit_shipments SET state = 'sending', attempts = attempts + 1, unconfirmed = unconfirmed + ?,"
        " claimed_by = ?, claimed_until = ? WHERE chain = ? AND sink = ? AND state = ? RETURNING last_hash",
        (1 if abandoned else 0, worker, until, chain, sink, previous),
    )
    if not taken:
        return None
    found = shipments(tx, sink)
    shipment = next(s for s in found if s.chain == chain)
    return shipment, str(taken[0][0]), abandoned


@dataclass(frozen=True, slots=True)
class ShipReport:
    """What one shipping round did."""

    shipped: tuple[Shipment, ...] = ()
    failed: tuple[Shipment, ...] = ()
    #: segments sent again after an attempt that never recorded its outcome (the receiver may hold them twice)
    resent_unconfirmed: tuple[str, ...] = ()


async def ship_closed_segments(
    store: Store,
    anchor: AuditAnchor,
    sink: Sink,
    *,
    retry_seconds: float = 5.0,
    max_backoff_seconds: float = 900.0,
    timeout_seconds: float = 30.0,
    now: datetime | None = None,
    worker: str | None = None,
) -> ShipReport:
    """Ship every closed segment that is due (new, or failed and past its backoff, or abandoned mid-send)."""
    moment = now or datetime.now(UTC)
    stamp = _instant(moment)
    until = _instant(moment + timedelta(seconds=timeout_seconds + _LEASE_MARGIN_SECONDS))
    who = worker or f"{socket.gethostname()}:{os.getpid()}"
    await store.write(lambda tx: _enlist(tx, sink.name, stamp))
    shipped: list[Shipment] = []
    failed: list[Shipment] = []
    resent: list[str] = []
    while True:
        claimed = await store.write(lambda tx: _claim(tx, sink.name, now=stamp, until=until, worker=who))
        if claimed is None:
            break
        shipment, last_hash, abandoned = claimed
        if abandoned:
            resent.append(shipment.chain)
            log.warning("audit_segment_resent", chain=shipment.chain, sink=sink.name, attempt=shipment.attempts)
        try:
            segment = await _segment(store, anchor, shipment, last_hash)
            await sink.send(segment)
        except (ShipError, ValueError) as exc:
            wait = min(max_backoff_seconds, retry_seconds * 2 ** max(0, shipment.attempts - 1))
            after = _instant(moment + timedelta(seconds=wait))
            await store.write(partial(_record_failure, chain=shipment.chain, sink=sink.name, error=str(exc), at=after))
            log.warning(
                "audit_segment_ship_failed", chain=shipment.chain, sink=sink.name, error=str(exc), retry_in=wait
            )
            failed.append(shipment)
            continue
        await store.write(partial(_record_success, chain=shipment.chain, sink=sink.name, at=stamp))
        log.info("audit_segment_shipped", chain=shipment.chain, sink=sink.name, events=len(segment.lines) - 1)
        shipped.append(shipment)
    return ShipReport(tuple(shipped), tuple(failed), tuple(resent))


def _record_failure(tx: Tx, *, chain: str, sink: str, error: str, at: str) -> None:
    tx.execute(
        "UPDATE audit_shipments SET state = 'failed', last_error = ?, next_attempt_at = ?,"
        " claimed_by = NULL, claimed_until = NULL WHERE chain = ? AND sink = ?",
        (error, at, chain, sink),
    )


def _record_success(tx: Tx, *, chain: str, sink: str, at: str) -> None:
    tx.execute(
        "UPDATE audit_shipments SET state = 'shipped', shipped_at = ?, last_error = NULL,"
        " claimed_by = NULL, claimed_until = NULL WHERE chain = ? AND sink = ?",
        (at, chain, sink),
    )


async def _segment(store: Store, anchor: AuditAnchor, shipment: Shipment, last_hash: str) -> Segment:
    state = await store.read(lambda tx: audit_chain(tx, shipment.chain))
    if state is None or state.base_link >= shipment.first_link:
        raise ValueError(f"segment {shipment.chain} is no longer in the store (pruned before it was shipped)")
    lines, end = await chain_stretch(store, state, shipment.last_link)
    if end.hash != last_hash:
        raise ValueError(f"segment {shipment.chain} no longer ends with the hash it was closed with")
    signed = await anyio.to_thread.run_sync(anchor.signed_record, shipment.chain, shipment.last_link, last_hash)
    if signed is None:
        # closed by a process on another host (its anchor is there): this host signs what it verified
        await anyio.to_thread.run_sync(
            lambda: anchor.checkpoint(shipment.last_link, last_hash, chain=shipment.chain, final=True)
        )
        signed = await anyio.to_thread.run_sync(anchor.signed_record, shipment.chain, shipment.last_link, last_hash)
    trailer = orjson.dumps({"checkpoint": signed})
    return Segment(
        shipment.chain,
        shipment.first_link,
        shipment.last_link,
        shipment.attempts,
        (*(line.rstrip(b"\n") for line in lines), trailer),
    )
