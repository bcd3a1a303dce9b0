"""Retention of the audit trail: ship the oldest stretch of the chain to the external log store, then drop it.

``bcconnect audit prune`` keeps ``[audit] retain_months`` of events in the store. What is older is first
written to ``[audit] export_dir`` as one NDJSON file per pruned stretch (each line: sequence number, previous
hash, hash and the AuditEvent exactly as hashed), checked link by link as it is written, and fsynced; then the
last exported event is signed as a checkpoint in the anchor (outside the database); only then are the events
deleted, and that event becomes the base the stored chain starts from. So:

- ``audit verify`` on the store starts at the base and requires a signed checkpoint naming it, so events
  removed any other way (no checkpoint, or a checkpoint with another hash) still fail verification;
- :func:`verify_audit_export` checks an exported file on its own: every link, and its last event against the
  signed checkpoint, so an export edited in the log store is caught too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
import orjson

from bcconnect.security._anchor import AuditAnchor, Checkpoint
from bcconnect.security._audit_store import (
    AuditEntry,
    ChainReport,
    audit_chain_base,
    chain_hash,
    drop_audit_events_through,
    last_event_before,
    stored_events,
)
from bcconnect.store import Store

EXPORT_PREFIX = "audit-"


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What a prune did: events removed, the export file written (None when discarded), the checkpoint."""

    removed: int
    export: Path | None = None
    checkpoint: Checkpoint | None = None


def _write_export(path: Path, lines: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    unfinished = path.with_suffix(".partial")
    with unfinished.open("wb") as handle:
        handle.writelines(lines)
        handle.flush()
        os.fsync(handle.fileno())
    unfinished.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


async def prune_audit_trail(
    store: Store, anchor: AuditAnchor, *, recorded_before: str, export_dir: Path | None
) -> PruneResult:
    """Export (unless ``export_dir`` is None: discard), checkpoint, then drop every event recorded before
    ``recorded_before`` (ISO instant, UTC). Refuses (ValueError) to drop a stretch whose links do not verify."""
    base = await store.read(audit_chain_base)
    cut = await store.read(lambda tx: last_event_before(tx, recorded_before))
    if cut is None or cut.seq <= base.seq:
        return PruneResult(0)
    lines: list[bytes] = []
    after, prev_hash = base.seq, base.hash
    while after < cut.seq:
        page = await store.read(partial(stored_events, after=after, through=cut.seq))
        if not page:
            raise ValueError(f"event {after + 1} is missing: the trail does not verify, nothing was pruned")
        for event in page:
            if event.seq != after + 1 or event.prev_hash != prev_hash:
                raise ValueError(f"event {after + 1} does not link: the trail does not verify, nothing was pruned")
            if chain_hash(event.seq, prev_hash, event.body) != event.hash:
                raise ValueError(f"event {event.seq} does not match its hash: nothing was pruned")
            line = {"seq": event.seq, "prev_hash": event.prev_hash, "hash": event.hash, "event": event.body.decode()}
            lines.append(orjson.dumps(line) + b"\n")
            after, prev_hash = event.seq, event.hash
    export: Path | None = None
    if export_dir is not None:
        export = export_dir / f"{EXPORT_PREFIX}{base.seq + 1:012d}-{cut.seq:012d}.ndjson"
        await anyio.to_thread.run_sync(_write_export, export, lines)
    # signed (and fsynced) before anything is deleted: the base the store will start from is anchored first
    point = await anyio.to_thread.run_sync(anchor.checkpoint, cut.seq, cut.hash)
    removed = await store.write(lambda tx: drop_audit_events_through(tx, cut))
    return PruneResult(removed, export, point)


def verify_audit_export(path: Path, checkpoints: Sequence[Checkpoint]) -> ChainReport:
    """Check one exported stretch: every link, and its last event against a valid signed checkpoint."""
    count = 0
    prev: AuditEntry | None = None
    for raw in path.read_bytes().splitlines():
        try:
            item = orjson.loads(raw)
            seq, prev_hash, digest, body = int(item["seq"]), str(item["prev_hash"]), str(item["hash"]), item["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return ChainReport(False, count, None, f"{path.name}: line {count + 1} is not an exported event")
        if prev is not None and (seq != prev.seq + 1 or prev_hash != prev.hash):
            return ChainReport(False, count, seq, f"{path.name}: event {seq} does not link to the one before")
        if chain_hash(seq, prev_hash, str(body).encode("utf-8")) != digest:
            return ChainReport(False, count, seq, f"{path.name}: event {seq} does not match its hash")
        prev, count = AuditEntry(seq, digest), count + 1
    if prev is None:
        return ChainReport(False, 0, None, f"{path.name} holds no events")
    if not any(c.valid and (c.seq, c.hash) == (prev.seq, prev.hash) for c in checkpoints):
        return ChainReport(False, count, prev.seq, f"{path.name}: no signed checkpoint names its last event")
    return ChainReport(True, count)
