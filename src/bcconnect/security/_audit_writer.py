"""Group commit for the audit trail: the events of many concurrent requests appended in one transaction, to
this writer's own chain.

Every request's AuditEvent must be durable before its response is sent. Written one transaction per request,
the trail costs a commit (and, on PostgreSQL, a lock on the chain's row held until that commit) per request,
and requests queue on it. :class:`AuditWriter` keeps the guarantee and shares the cost: a request hands its
event over and waits; whoever finds no flush running becomes the flusher and appends every waiting event in
one write transaction, then wakes them all, each with its own place in the chain (or the error, so a failed
flush fails every request in it: none is answered as if audited). Events that arrive during a flush go in the
next one, whose flusher is the first of them to wake, so no request flushes for others indefinitely.

Batches form by themselves under load (the events that arrived while the last commit ran) and are one event
when the server is idle, so the wait added to a request is at most one commit.

Each writer appends to a chain of its own (a *segment*), so two API processes never wait on one row. A segment
is opened with a signed checkpoint at link 0 (the anchor then knows it exists) and closed with a final signed
checkpoint when it rotates — at a new month (so a segment lies in one monthly partition), after
``segment_max_events``, or after ``segment_max_seconds`` — or when the writer closes. Closed segments are what
retention drops and what the shipper sends to a log service.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import anyio

from bcconnect.errors import StoreError
from bcconnect.logging import get_logger
from bcconnect.security._anchor import SHARED_CHAIN, AuditAnchor
from bcconnect.security._audit_store import (
    AuditEntry,
    ChainState,
    append_audit_events,
    audit_chains,
    close_audit_chain,
    month_of,
    open_audit_chain,
)
from bcconnect.store import Store, Tx

log = get_logger(__name__)

#: the most events one transaction appends (a bound on one commit's work under a burst)
MAX_BATCH = 500
#: a segment closes after this many events (a shippable, verifiable unit) …
SEGMENT_MAX_EVENTS = 100_000
#: … or once it is this old (seconds), so a quiet writer's events are still closed and shipped within a day
SEGMENT_MAX_SECONDS = 86_400.0


def new_chain_id() -> str:
    """A name for a new segment: unique across hosts and processes, sortable by nothing in particular.

    >>> len(new_chain_id()) > 10
    True
    """
    return f"w-{socket.gethostname()[:24]}-{os.getpid()}-{secrets.token_hex(4)}"


@dataclass(slots=True)
class PendingEvent:
    """One request's event on its way into the trail."""

    #: builds the AuditEvent in the flush's transaction (it may read the store, e.g. whose record it is)
    build: Callable[[Tx], tuple[dict[str, Any], Sequence[str]]]
    entry: AuditEntry | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class AuditWriter:
    """Appends AuditEvents by group commit to its own chain (see the module docstring); one per API process."""

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = MAX_BATCH,
        before_batch: Callable[[Tx], None] | None = None,
        anchor: AuditAnchor | None = None,
        segment_max_events: int = SEGMENT_MAX_EVENTS,
        segment_max_seconds: float = SEGMENT_MAX_SECONDS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        #: run once per batch, in its transaction, before the events are built (e.g. to check a cache)
        self._before_batch = before_batch
        self._max_batch = max(1, max_batch)
        #: signs each segment's opening and closing (None: segments are not anchored)
        self.anchor = anchor
        self._segment_max_events = max(1, segment_max_events)
        self._segment_max_seconds = segment_max_seconds
        self._now = now
        self._pending: list[PendingEvent] = []
        self._flushing = False
        #: set when a flush ends (made on first use: an event belongs to the running event loop)
        self._flushed: anyio.Event | None = None
        #: this writer's open segment (None until the first flush, and after :meth:`close`)
        self._segment: ChainState | None = None
        self._segment_events = 0
        self._segment_opened = 0.0
        #: transactions and events written, segments opened (observable in tests and benchmarks)
        self.batches = 0
        self.events = 0
        self.segments = 0

    @property
    def chain(self) -> str | None:
        """The open segment's chain id (None when none is open)."""
        return self._segment.chain if self._segment else None

    async def append(self, build: Callable[[Tx], tuple[dict[str, Any], Sequence[str]]]) -> AuditEntry:
        """Append the event ``build`` makes; returns once it is committed (raises if its batch failed)."""
        item = PendingEvent(build)
        self._pending.append(item)
        while not item.done:
            if self._flushing:
                if self._flushed is None:
                    self._flushed = anyio.Event()
                await self._flushed.wait()
            else:
                await self._flush()
        if item.error is not None:
            raise item.error
        assert item.entry is not None  # set with done when no error
        return item.entry

    async def close(self) -> None:
        """Close this writer's segment (final signed checkpoint); a later append opens a new one."""
        while self._flushing:
            if self._flushed is None:
                self._flushed = anyio.Event()
            await self._flushed.wait()
        self._flushing = True
        try:
            with anyio.CancelScope(shield=True):
                await self._close_segment()
        except Exception as exc:  # noqa: BLE001 - reported: the segment stays open and maintenance closes it
            log.warning("audit_segment_close_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._release()

    async def _close_segment(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        closed = await self._store.write(lambda tx: close_audit_chain(tx, segment.chain, now=self._now()))
        if closed is not None and self.anchor is not None:
            # committed first: the final checkpoint names the end the store now holds
            anchor = self.anchor
            await anyio.to_thread.run_sync(
                lambda: anchor.checkpoint(closed.link, closed.hash, chain=closed.chain, final=True)
            )
        log.info("audit_segment_closed", chain=segment.chain, events=closed.link if closed else None)

    async def _open_segment(self) -> ChainState:
        chain, writer, moment = new_chain_id(), f"{socket.gethostname()}:{os.getpid()}", self._now()
        state = await self._store.write(lambda tx: open_audit_chain(tx, chain=chain, writer=writer, now=moment))
        if self.anchor is not None:
            # the opening is signed once committed, so a segment removed whole later is missed by verification
            anchor = self.anchor
            await anyio.to_thread.run_sync(lambda: anchor.checkpoint(0, state.hash, chain=chain))
        self._segment, self._segment_events, self._segment_opened = state, 0, anyio.current_time()
        self.segments += 1
        return state

    def _segment_due(self, segment: ChainState) -> bool:
        moment = self._now().astimezone(UTC).isoformat()
        return (
            month_of(moment) > segment.month
            or self._segment_events >= self._segment_max_events
            or anyio.current_time() - self._segment_opened >= self._segment_max_seconds
        )

    async def _flush(self) -> None:
        self._flushing = True
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        try:
            # shielded: a request cancelled meanwhile must not abandon the others' commit half-way
            with anyio.CancelScope(shield=True):
                try:
                    if self._segment is not None and self._segment_due(self._segment):
                        await self._close_segment()
                    segment = self._segment or await self._open_segment()
                except Exception as exc:  # noqa: BLE001 - no segment: every request of the batch is not audited
                    self._fail(batch, exc)
                    return

                def write(tx: Tx) -> list[AuditEntry]:
                    if self._before_batch is not None:
                        self._before_batch(tx)
                    return append_audit_events(tx, [item.build(tx) for item in batch], chain=segment.chain)

                try:
                    entries = await self._store.write(write)
                except Exception as exc:  # noqa: BLE001 - whatever failed, every request of the batch is not audited
                    self._fail(batch, exc)
                    return
            for item, entry in zip(batch, entries, strict=True):
                item.entry, item.done = entry, True
            self._segment_events += len(batch)
            self.batches += 1
            self.events += len(batch)
        finally:
            self._release()

    @staticmethod
    def _fail(batch: list[PendingEvent], exc: Exception) -> None:
        for item in batch:
            item.error = StoreError(f"the audit trail could not be written: {exc}")
            item.error.__cause__ = exc
            item.done = True

    def _release(self) -> None:
        self._flushing = False
        woken, self._flushed = self._flushed, None
        if woken is not None:
            woken.set()


async def close_idle_segments(
    store: Store, anchor: AuditAnchor | None, *, idle_seconds: float = SEGMENT_MAX_SECONDS, now: datetime | None = None
) -> list[str]:
    """Close writers' segments that have written nothing for ``idle_seconds`` (their process died or went quiet),
    each with a final signed checkpoint, so they can be shipped; returns their chain ids. A live writer whose
    segment is closed under it simply opens a new one at its next append."""
    moment = now or datetime.now(UTC)
    before = (moment - timedelta(seconds=idle_seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    stale = await store.read(
        lambda tx: [
            c.chain for c in audit_chains(tx) if not c.closed and c.chain != SHARED_CHAIN and c.written_at < before
        ]
    )
    closed = []
    for chain in stale:
        state = await store.write(partial(close_audit_chain, chain=chain, now=moment))
        if state is None:
            continue
        if anchor is not None:
            await anyio.to_thread.run_sync(partial(anchor.checkpoint, state.link, state.hash, chain=chain, final=True))
        closed.append(chain)
        log.info("audit_segment_closed", chain=chain, events=state.link, idle=True)
    return closed
