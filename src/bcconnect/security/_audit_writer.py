"""Group commit for the audit trail: the events of many concurrent requests appended in one transaction.

Every request's AuditEvent must be durable before its response is sent. Written one transaction per request,
the trail costs a commit (and, on PostgreSQL, a lock on the chain head held until that commit) per request,
and requests queue on it. :class:`AuditWriter` keeps the guarantee and shares the cost: a request hands its
event over and waits; whoever finds no flush running becomes the flusher and appends every waiting event in
one write transaction, then wakes them all, each with its own place in the chain (or the error, so a failed
flush fails every request in it: none is answered as if audited). Events that arrive during a flush go in the
next one, whose flusher is the first of them to wake, so no request flushes for others indefinitely.

Batches form by themselves under load (the events that arrived while the last commit ran) and are one event
when the server is idle, so the wait added to a request is at most one commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from bcconnect.errors import StoreError
from bcconnect.security._audit_store import AuditEntry, append_audit_events
from bcconnect.store import Store, Tx

#: the most events one transaction appends (a bound on one commit's work under a burst)
MAX_BATCH = 500


@dataclass(slots=True)
class PendingEvent:
    """One request's event on its way into the trail."""

    #: builds the AuditEvent in the flush's transaction (it may read the store, e.g. whose record it is)
    build: Callable[[Tx], tuple[dict[str, Any], Sequence[str]]]
    entry: AuditEntry | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class AuditWriter:
    """Appends AuditEvents by group commit (see the module docstring); one per API process."""

    def __init__(
        self, store: Store, *, max_batch: int = MAX_BATCH, before_batch: Callable[[Tx], None] | None = None
    ) -> None:
        self._store = store
        #: run once per batch, in its transaction, before the events are built (e.g. to check a cache)
        self._before_batch = before_batch
        self._max_batch = max(1, max_batch)
        self._pending: list[PendingEvent] = []
        self._flushing = False
        #: set when a flush ends (made on first use: an event belongs to the running event loop)
        self._flushed: anyio.Event | None = None
        #: transactions and events written (observable in tests and benchmarks)
        self.batches = 0
        self.events = 0

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

    async def _flush(self) -> None:
        self._flushing = True
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        try:

            def write(tx: Tx) -> list[AuditEntry]:
                if self._before_batch is not None:
                    self._before_batch(tx)
                return append_audit_events(tx, [item.build(tx) for item in batch])

            try:
                # shielded: a request cancelled meanwhile must not abandon the others' commit half-way
                with anyio.CancelScope(shield=True):
                    entries = await self._store.write(write)
            except Exception as exc:  # noqa: BLE001 - whatever failed, every request of the batch is not audited
                for item in batch:
                    item.error = StoreError(f"the audit trail could not be written: {exc}")
                    item.error.__cause__ = exc
                    item.done = True
                return
            for item, entry in zip(batch, entries, strict=True):
                item.entry, item.done = entry, True
            self.batches += 1
            self.events += len(batch)
        finally:
            self._flushing = False
            woken, self._flushed = self._flushed, None
            if woken is not None:
                woken.set()
