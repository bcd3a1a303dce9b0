"""Monthly partitions of the audit trail on a real PostgreSQL: events land in their month's partition across a
month boundary, a month without a partition is reported (never silently used) and repaired, and retention drops a
whole month as one partition after exporting it, with ``audit verify`` passing across partitions and exports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bcconnect.security import (
    AuditAnchor,
    append_audit_event,
    audit_chains,
    audit_partitions,
    default_partition_events,
    ensure_audit_months,
    prune_audit_trail,
    verify_audit_chain,
    verify_audit_exports,
)
from bcconnect.security._audit_writer import AuditWriter
from bcconnect.store import Store, Tx, open_store
from support.postgres_schema import postgres_schema_url

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def instant(self) -> str:
        return self.now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(event_id: str, recorded: str) -> dict[str, Any]:
    return {"resourceType": "AuditEvent", "id": event_id, "recorded": recorded}


@pytest.fixture
async def pg_store(tmp_path: Path) -> AsyncIterator[Store]:
    for url in postgres_schema_url():
        async with open_store(url) as store:
            yield store


def _partition_rows(tx: Tx, month: int) -> int | None:
    """Rows in the month's own partition table (None: there is no such partition)."""
    exists = tx.query_one("SELECT to_regclass(?)::text", (f"audit_events_m{month}",))
    if not exists or not exists[0]:
        return None
    row = tx.query_one(f"SELECT COUNT(*) FROM audit_events_m{month}")  # noqa: S608 - an integer
    return int(row[0]) if row else 0


def _exported_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("audit-*.ndjson"))


async def _verify(store: Store, anchor: AuditAnchor, exported: Path) -> tuple[bool, str]:
    points = anchor.checkpoints()
    report = await store.read(lambda tx: verify_audit_chain(tx, points))
    if not report.ok:
        return False, str(report.problem)
    chains = await store.read(audit_chains)
    result = verify_audit_exports(_exported_files(exported), points, chains)
    return result.ok, str(result.problem)


async def test_a_month_boundary_lands_in_two_partitions_and_prune_drops_one(pg_store: Store, tmp_path: Path) -> None:
    store, anchor, exported = pg_store, AuditAnchor(tmp_path / "anchor"), tmp_path / "exported"
    clock = Clock(datetime(2026, 11, 30, 23, 59, 59, 500_000, tzinfo=UTC))
    writer = AuditWriter(store, anchor=anchor, now=clock)
    for n in range(3):
        await writer.append(lambda tx, n=n: (_event(f"nov-{n}", clock.instant()), ["Patient/p1"]))
    # opening the segment made this month's partition and the next one ahead of need
    assert await store.read(lambda tx: (_partition_rows(tx, 202611), _partition_rows(tx, 202612))) == (3, 0)
    clock.now = datetime(2026, 12, 1, 0, 0, 0, 100_000, tzinfo=UTC)
    for n in range(2):
        await writer.append(lambda tx, n=n: (_event(f"dec-{n}", clock.instant()), ["Patient/p1"]))
    # the shared chain: a December event, then one recorded a moment before midnight but appended after it,
    # which stays in December (a chain never goes back a month, so dropping November takes a prefix)
    await store.write(lambda tx: append_audit_event(tx, _event("shared-dec", "2026-12-01T00:00:01.000Z")))
    await store.write(lambda tx: append_audit_event(tx, _event("shared-late", "2026-11-30T23:59:59.999Z")))
    assert await store.read(lambda tx: (_partition_rows(tx, 202611), _partition_rows(tx, 202612))) == (3, 4)
    # the writer rotated into a new segment at the month boundary: November's is closed (a final checkpoint)
    chains = {c.chain: c for c in await store.read(audit_chains)}
    assert sum(1 for c in chains.values() if c.closed) == 1
    assert any(p.final for p in anchor.checkpoints())
    assert await store.read(default_partition_events) == 0
    assert await _verify(store, anchor, exported) == (True, "None")

    result = await prune_audit_trail(store, anchor, recorded_before="2026-12-01T00:00:00.000Z", export_dir=exported)
    assert (result.removed, result.months, len(result.exports)) == (3, (202611,), 1)
    # November went as a whole partition: its table is gone, December's is untouched
    assert await store.read(lambda tx: (_partition_rows(tx, 202611), _partition_rows(tx, 202612))) == (None, 4)
    months, _ = await store.read(audit_partitions)
    assert [m.month for m in months if m.events] == [202612]
    assert await _verify(store, anchor, exported) == (True, "None")
    # and the trail goes on in December
    await writer.append(lambda tx: (_event("dec-late", clock.instant()), ["Patient/p1"]))
    assert await _verify(store, anchor, exported) == (True, "None")
    # the exported November file is what the chain now starts from: removing it is caught
    result.exports[0].unlink()
    ok, problem = await _verify(store, anchor, exported)
    assert not ok
    assert "exported files end at" in problem


async def test_a_month_without_its_partition_is_reported_then_moved_into_one(pg_store: Store) -> None:
    store = pg_store
    await store.write(lambda tx: append_audit_event(tx, _event("a", "2030-01-05T10:00:00.000Z")))
    await store.write(lambda tx: append_audit_event(tx, _event("b", "2030-03-05T10:00:00.000Z")))
    # each move of the shared chain into a new month made that month's partition: nothing went to the default
    assert await store.read(default_partition_events) == 0
    assert await store.read(lambda tx: (_partition_rows(tx, 203001), _partition_rows(tx, 203003))) == (1, 1)

    # an event whose month has no partition (say written by hand, or a writer of an older release) lands in the
    # default partition: reported, then moved out when that month's partition is made

    def sneak_in(tx: Tx) -> None:
        tx.execute(
            "INSERT INTO audit_events (seq, chain, link, month, event_id, recorded, prev_hash, hash, body)"
            " SELECT seq + 100, chain, link + 100, 203102, 'late', recorded, prev_hash, hash, body"
            " FROM audit_events WHERE event_id = 'b'"
        )

    await store.write(sneak_in)
    assert await store.read(default_partition_events) == 1
    _, in_default = await store.read(audit_partitions)
    assert in_default == 1
    moved = await store.write(lambda tx: ensure_audit_months(tx, [203102]))
    assert moved == 1
    assert await store.read(default_partition_events) == 0
    assert await store.read(lambda tx: _partition_rows(tx, 203102)) == 1
