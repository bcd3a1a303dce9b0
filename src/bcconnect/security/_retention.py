"""Retention of the audit trail: ship the oldest whole months of every chain to the external log store, then drop
them.

``bcconnect audit prune`` keeps ``[audit] retain_months`` of events in the store. Events are stored by month
(``audit_events.month``; on PostgreSQL a partition per month) and a chain never goes back a month, so the events
of a month are a prefix of each chain's stored part. For each month older than the cut, oldest first, and each
chain with events in it: the stretch is written to ``[audit] export_dir`` as one NDJSON file (each line: chain,
link, previous hash, hash and the AuditEvent exactly as hashed), checked link by link as it is written, and
fsynced; then its last event is signed as a checkpoint in the anchor (outside the database); only then is the
month dropped (a whole partition on PostgreSQL) and each chain's base moved to its last exported event. So:

- ``audit verify`` on the store starts each chain at its base and requires a signed checkpoint naming it, so
  events removed any other way (no checkpoint, or a checkpoint with another hash) still fail verification;
- :func:`verify_audit_exports` checks the exported files: every link of each, its last event against a signed
  checkpoint, and each chain's files end to end from its genesis to the base the store starts from, so an export
  edited, removed or re-ordered in the log store is caught too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
import orjson

from bcconnect.security._anchor import SHARED_CHAIN, AuditAnchor, Checkpoint
from bcconnect.security._audit_store import (
    AuditEntry,
    ChainReport,
    ChainState,
    advance_chain_base,
    audit_chains,
    chain_genesis,
    chain_hash,
    drop_audit_month,
    month_extents,
    month_of,
    stored_events,
    stored_months,
    unshipped_segments,
)
from bcconnect.store import Store, Tx

EXPORT_PREFIX = "audit-"

#: drops one month of events in the prune's transaction; returns how many were removed
DropMonth = Callable[[Tx, int], int]


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What a prune did: events removed, the export files written (none when discarded), the checkpoints."""

    removed: int
    exports: tuple[Path, ...] = ()
    checkpoints: tuple[Checkpoint, ...] = ()
    months: tuple[int, ...] = ()


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


def export_line(chain: str, link: int, prev_hash: str, digest: str, body: bytes) -> bytes:
    """One exported (or shipped) event: an NDJSON line that verifies on its own against its neighbours."""
    return orjson.dumps({"chain": chain, "seq": link, "prev_hash": prev_hash, "hash": digest, "event": body.decode()})


async def chain_stretch(store: Store, state: ChainState, through: int) -> tuple[list[bytes], AuditEntry]:
    """The NDJSON lines of ``state``'s stored events after its base up to link ``through``, each link checked.

    ValueError when a link is missing or does not verify (nothing should then be dropped or shipped).
    """
    lines: list[bytes] = []
    after, prev_hash = state.base_link, state.base_hash if state.base_link else chain_genesis(state.chain)
    while after < through:
        page = await store.read(partial(stored_events, after=after, through=through, chain=state.chain))
        if not page:
            raise ValueError(f"event {after + 1} of chain {state.chain} is missing: the trail does not verify")
        for event in page:
            if event.link != after + 1 or event.prev_hash != prev_hash:
                raise ValueError(f"event {after + 1} of chain {state.chain} does not link: the trail does not verify")
            if chain_hash(event.link, prev_hash, event.body) != event.hash:
                raise ValueError(f"event {event.link} of chain {state.chain} does not match its hash")
            lines.append(export_line(state.chain, event.link, event.prev_hash, event.hash, event.body) + b"\n")
            after, prev_hash = event.link, event.hash
    return lines, AuditEntry(0, prev_hash, state.chain, after)


async def prune_audit_trail(
    store: Store,
    anchor: AuditAnchor,
    *,
    recorded_before: str,
    export_dir: Path | None,
    drop_month: DropMonth = drop_audit_month,
    shipped_to: str | None = None,
) -> PruneResult:
    """Export (unless ``export_dir`` is None: discard), checkpoint, then drop every whole month of events before
    the month of ``recorded_before`` (ISO instant, UTC). Refuses (ValueError) to drop a stretch whose links do
    not verify, or (``shipped_to``: the configured log service) a month holding a closed segment not shipped yet."""
    cut = month_of(recorded_before)
    months = [m for m in await store.read(stored_months) if m < cut]
    removed, exports, points = 0, [], []
    for month in months:
        extents = await store.read(partial(month_extents, month=month))
        chains = {c.chain: c for c in await store.read(audit_chains)}
        if shipped_to is not None:
            names = [chain for chain, _, _ in extents]
            waiting = await store.read(partial(unshipped_segments, chains=names, sink=shipped_to))
            if waiting:
                raise ValueError(
                    f"month {month} holds segments not yet shipped ({', '.join(waiting)}): nothing dropped"
                )
        ends: list[AuditEntry] = []
        for chain, first, last in extents:
            state = chains.get(chain)
            if state is None or first != state.base_link + 1:
                raise ValueError(f"month {month} of chain {chain} does not start where its stored part starts")
            lines, end = await chain_stretch(store, state, last)
            if export_dir is not None:
                path = export_dir / f"{EXPORT_PREFIX}{month}-{chain}-{first:012d}-{last:012d}.ndjson"
                await anyio.to_thread.run_sync(_write_export, path, lines)
                exports.append(path)
            # signed (and fsynced) before anything is deleted: the base the store will start from is anchored first
            points.append(await anyio.to_thread.run_sync(partial(anchor.checkpoint, end.link, end.hash, chain=chain)))
            ends.append(end)

        def drop(tx: Tx, month: int = month, ends: list[AuditEntry] = ends) -> int:
            for end in ends:
                # the month must be the whole prefix: no event up to the new base may live in another month
                row = tx.query_one(
                    "SELECT COUNT(*) FROM audit_events WHERE chain = ? AND link <= ? AND month <> ?",
                    (end.chain, end.link, month),
                )
                if row and int(row[0]):
                    raise ValueError(f"chain {end.chain} has events up to {end.link} outside month {month}")
                advance_chain_base(tx, end.chain, end)
            return drop_month(tx, month)

        removed += await store.write(drop)
    return PruneResult(removed, tuple(exports), tuple(points), tuple(months))


@dataclass(frozen=True, slots=True)
class _Stretch:
    path: Path
    chain: str
    first: int
    first_prev: str
    last: AuditEntry


def _check_file(path: Path, checkpoints: Sequence[Checkpoint]) -> tuple[ChainReport, _Stretch | None]:
    count = 0
    prev: AuditEntry | None = None
    chain, first, first_prev = SHARED_CHAIN, 0, ""
    for raw in path.read_bytes().splitlines():
        try:
            item = orjson.loads(raw)
            seq, prev_hash, digest, body = int(item["seq"]), str(item["prev_hash"]), str(item["hash"]), item["event"]
            line_chain = str(item.get("chain", SHARED_CHAIN))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return ChainReport(False, count, None, f"{path.name}: line {count + 1} is not an exported event"), None
        if prev is None:
            chain, first, first_prev = line_chain, seq, prev_hash
        elif line_chain != chain or seq != prev.link + 1 or prev_hash != prev.hash:
            return ChainReport(False, count, seq, f"{path.name}: event {seq} does not link to the one before"), None
        if chain_hash(seq, prev_hash, str(body).encode("utf-8")) != digest:
            return ChainReport(False, count, seq, f"{path.name}: event {seq} does not match its hash"), None
        prev, count = AuditEntry(0, digest, chain, seq), count + 1
    if prev is None:
        return ChainReport(False, 0, None, f"{path.name} holds no events"), None
    if not any(c.valid and (c.chain, c.seq, c.hash) == (chain, prev.link, prev.hash) for c in checkpoints):
        return ChainReport(False, count, prev.link, f"{path.name}: no signed checkpoint names its last event"), None
    return ChainReport(True, count), _Stretch(path, chain, first, first_prev, prev)


def verify_audit_export(path: Path, checkpoints: Sequence[Checkpoint]) -> ChainReport:
    """Check one exported stretch: every link, and its last event against a valid signed checkpoint."""
    return _check_file(path, checkpoints)[0]


def verify_audit_exports(
    paths: Sequence[Path], checkpoints: Sequence[Checkpoint], chains: Sequence[ChainState]
) -> ChainReport:
    """Check every exported file, and that each chain's files join end to end from its genesis to the base the
    store's part of it starts after: a file removed, cut short or put out of order fails, as does a chain whose
    dropped events are in no file."""
    stretches: dict[str, list[_Stretch]] = {}
    total = 0
    for path in paths:
        report, stretch = _check_file(path, checkpoints)
        if stretch is None:
            return report
        total += report.events
        stretches.setdefault(stretch.chain, []).append(stretch)
    bases = {c.chain: c for c in chains}
    for chain in sorted(set(stretches) | {c.chain for c in chains if c.base_link}):
        link, hash_ = 0, chain_genesis(chain)
        for stretch in sorted(stretches.get(chain, []), key=lambda s: s.first):
            if stretch.first != link + 1 or stretch.first_prev != hash_:
                return ChainReport(
                    False, total, link + 1, f"chain {chain}: events {link + 1}–{stretch.first - 1} are in no exported"
                    f" file (before {stretch.path.name})" if stretch.first > link + 1
                    else f"chain {chain}: {stretch.path.name} does not follow the file before it", chain,
                )  # fmt: skip
            link, hash_ = stretch.last.link, stretch.last.hash
        state = bases.get(chain)
        if state is not None and (state.base_link, state.base_hash if state.base_link else hash_) != (link, hash_):
            return ChainReport(
                False, total, link + 1,
                f"chain {chain}: the store starts after event {state.base_link}, but its exported files end at {link}",
                chain,
            )  # fmt: skip
    return ChainReport(True, total, chains=len(stretches))
