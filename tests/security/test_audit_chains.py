"""A chain per writer: two writers (as two API processes would) append to their own segments, and ``audit verify``
still catches truncation, deletion, re-hashing and re-ordering in any segment, across segments, and across the
files retention exported. Each attack is shown to pass nothing: the untouched trail verifies, the attacked one
does not (on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from bcconnect.security import (
    AuditAnchor,
    append_audit_event,
    audit_chains,
    prune_audit_trail,
    verify_audit_chain,
    verify_audit_exports,
)
from bcconnect.security._audit_codec import pack, unpack
from bcconnect.security._audit_store import chain_hash
from bcconnect.security._audit_writer import AuditWriter
from bcconnect.store import Store, Tx, open_store

pytestmark = pytest.mark.anyio


@dataclass
class Clock:
    """The time both writers and the events see (moved by the test to cross month boundaries)."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def instant(self) -> str:
        return self.now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Trail:
    store: Store
    anchor: AuditAnchor
    writers: dict[str, AuditWriter]
    clock: Clock
    export_dir: Path

    async def write(self, who: str, count: int) -> None:
        for n in range(count):
            event = _event(f"{who}-{self.clock.instant()}-{n}", self.clock.instant())
            await self.writers[who].append(lambda tx, e=event: (e, ["Patient/p1"]))

    async def shared(self, count: int) -> None:
        for n in range(count):
            event = _event(f"shared-{self.clock.instant()}-{n}", self.clock.instant())
            await self.store.write(lambda tx, e=event: append_audit_event(tx, e, patients=["Patient/p1"]))

    async def verify(self) -> tuple[bool, str]:
        points = self.anchor.checkpoints()
        report = await self.store.read(lambda tx: verify_audit_chain(tx, points))
        if not report.ok:
            return False, str(report.problem)
        chains = await self.store.read(audit_chains)
        files = sorted(self.export_dir.glob("audit-*.ndjson"))
        exported = verify_audit_exports(files, points, chains)
        return exported.ok, str(exported.problem)


def _event(event_id: str, recorded: str) -> dict[str, Any]:
    return {"resourceType": "AuditEvent", "id": event_id, "recorded": recorded, "agent": [{"who": {"display": "u"}}]}


@pytest.fixture
async def trail(store_url: str, tmp_path: Path) -> AsyncIterator[Trail]:
    """Two writers and the shared chain: January and February 2019 (each writer's January segment closed when
    it rotated into February), then today (the February segments closed at rotation, today's left open)."""
    clock = Clock(datetime(2019, 1, 10, 9, 0, tzinfo=UTC))
    anchor = AuditAnchor(tmp_path / "anchor")
    async with open_store(store_url) as store:
        writers = {w: AuditWriter(store, anchor=anchor, now=clock) for w in ("a", "b")}
        made = Trail(store, anchor, writers, clock, tmp_path / "exported")
        for month in (datetime(2019, 1, 10, tzinfo=UTC), datetime(2019, 2, 10, tzinfo=UTC), datetime.now(UTC)):
            clock.now = month
            await made.write("a", 4)
            await made.write("b", 3)
            await made.shared(2)
        # an open segment's progress is checkpointed too (the gate does it every N events)
        for writer in writers.values():
            state = await store.read(lambda tx, c=writer.chain: _chain_row(tx, c))
            anchor.checkpoint(state[0], state[1], chain=str(writer.chain))
        yield made


def _chain_row(tx: Tx, chain: object) -> tuple[int, str]:
    row = tx.query_one("SELECT link, hash FROM audit_chains WHERE chain = ?", (chain,))
    assert row is not None
    return int(row[0]), str(row[1])


def _segments(tx: Tx) -> dict[str, list[str]]:
    """Each writer's segments, oldest first, by the writer named in their events."""
    rows = tx.query("SELECT chain, event_id FROM audit_events WHERE link = 1 ORDER BY seq")
    out: dict[str, list[str]] = {}
    for chain, event_id in rows:
        out.setdefault(str(event_id).split("-")[0], []).append(str(chain))
    return out


def _rows(tx: Tx, chain: str) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in tx.query(
            "SELECT seq, link, month, event_id, recorded, prev_hash, hash, body_z FROM audit_events"
            " WHERE chain = ? ORDER BY link",
            (chain,),
        )
    ]


def _rewrite(tx: Tx, chain: str, bodies: list[bytes], *, start: int = 1) -> None:
    """The attacker rewrites ``chain`` from link ``start`` with these event bodies, every hash recomputed and the
    chain's row set to match: a self-consistent chain."""
    rows = _rows(tx, chain)
    prev = rows[start - 2][6] if start > 1 else rows[0][5]
    month = rows[-1][2]
    tx.execute(f"DELETE FROM audit_event_patients WHERE seq IN ({_SEQS_OF} AND link >= ?)", (chain, start))  # noqa: S608
    tx.execute("DELETE FROM audit_events WHERE chain = ? AND link >= ?", (chain, start))
    top = tx.query_one("SELECT MAX(seq) FROM audit_events")
    seq = int(top[0]) if top and top[0] is not None else 0
    link = start - 1
    for body in bodies:
        link, seq = link + 1, seq + 1
        digest = chain_hash(link, prev, body)
        tx.execute(
            "INSERT INTO audit_events (seq, chain, link, month, event_id, recorded, prev_hash, hash, body, body_z)"
            " VALUES (?, ?, ?, ?, ?, '', ?, ?, '', ?)",
            (seq, chain, link, month, orjson.loads(body)["id"], prev, digest, pack(body)),
        )
        prev = digest
    tx.execute("UPDATE audit_chains SET link = ?, hash = ? WHERE chain = ?", (link, prev, chain))


_SEQS_OF = "SELECT seq FROM audit_events WHERE chain = ?"


def _bodies(tx: Tx, chain: str) -> list[bytes]:
    return [unpack(bytes(r[7])) for r in _rows(tx, chain)]


# --- attacks inside one segment ----------------------------------------------------------------------------------


def truncate_closed_segment(tx: Tx) -> None:
    chain = _segments(tx)["a"][0]
    _rewrite(tx, chain, _bodies(tx, chain)[:2])


def truncate_open_segment(tx: Tx) -> None:
    chain = _segments(tx)["b"][-1]
    _rewrite(tx, chain, _bodies(tx, chain)[:1])


def delete_one_event(tx: Tx) -> None:
    chain = _segments(tx)["a"][1]
    tx.execute(f"DELETE FROM audit_event_patients WHERE seq IN ({_SEQS_OF} AND link = 2)", (chain,))  # noqa: S608
    tx.execute("DELETE FROM audit_events WHERE chain = ? AND link = 2", (chain,))


def delete_one_and_rehash(tx: Tx) -> None:
    chain = _segments(tx)["b"][0]
    bodies = _bodies(tx, chain)
    _rewrite(tx, chain, bodies[:1] + bodies[2:])


def edit_one_event(tx: Tx) -> None:
    chain = _segments(tx)["b"][1]
    row = tx.query_one("SELECT body_z FROM audit_events WHERE chain = ? AND link = 2", (chain,))
    assert row is not None
    tx.execute(
        "UPDATE audit_events SET body_z = ? WHERE chain = ? AND link = 2",
        (pack(unpack(bytes(row[0])).replace(b'"u"', b'"x"')), chain),
    )


def reorder_in_segment(tx: Tx) -> None:
    chain = _segments(tx)["a"][2]
    bodies = _bodies(tx, chain)
    bodies[1], bodies[2] = bodies[2], bodies[1]
    _rewrite(tx, chain, bodies)


def reorder_in_the_trail(tx: Tx) -> None:
    """Swap the trail-wide numbers of two events of one segment (newest-first answers would lie)."""
    chain = _segments(tx)["a"][0]
    rows = _rows(tx, chain)
    first, second = rows[0][0], rows[1][0]
    tx.execute("DELETE FROM audit_event_patients WHERE seq IN (?, ?)", (first, second))
    tx.execute("UPDATE audit_events SET seq = -1 WHERE seq = ?", (first,))
    tx.execute("UPDATE audit_events SET seq = ? WHERE seq = ?", (first, second))
    tx.execute("UPDATE audit_events SET seq = ? WHERE seq = -1", (second,))


def append_to_closed_segment(tx: Tx) -> None:
    chain = _segments(tx)["a"][0]
    bodies = _bodies(tx, chain)
    forged = orjson.dumps(_event("a-forged", "2019-01-31T23:00:00.000Z"), option=orjson.OPT_SORT_KEYS)
    _rewrite(tx, chain, [*bodies, forged])


# --- attacks across segments -------------------------------------------------------------------------------------


def delete_whole_segment(tx: Tx) -> None:
    chain = _segments(tx)["b"][1]
    tx.execute("DELETE FROM audit_event_patients WHERE seq IN (SELECT seq FROM audit_events WHERE chain = ?)", (chain,))
    tx.execute("DELETE FROM audit_events WHERE chain = ?", (chain,))
    tx.execute("DELETE FROM audit_chains WHERE chain = ?", (chain,))


def move_event_between_segments(tx: Tx) -> None:
    """Take an event out of one writer's segment into the other's, both re-hashed to look whole."""
    source, target = _segments(tx)["a"][1], _segments(tx)["b"][1]
    taken = _bodies(tx, source)
    _rewrite(tx, source, taken[:-1])
    _rewrite(tx, target, [*_bodies(tx, target), taken[-1]])


def swap_segment_names(tx: Tx) -> None:
    """Rename one writer's segment as the other's (chain ids exchanged in every row)."""
    one, two = _segments(tx)["a"][0], _segments(tx)["b"][0]
    for table in ("audit_events", "audit_chains"):
        tx.execute(f"UPDATE {table} SET chain = 'swap' WHERE chain = ?", (one,))  # noqa: S608 - fixed names
        tx.execute(f"UPDATE {table} SET chain = ? WHERE chain = ?", (one, two))  # noqa: S608
        tx.execute(f"UPDATE {table} SET chain = ? WHERE chain = 'swap'", (two,))  # noqa: S608


ATTACKS: list[Callable[[Tx], None]] = [
    truncate_closed_segment,
    truncate_open_segment,
    delete_one_event,
    delete_one_and_rehash,
    edit_one_event,
    reorder_in_segment,
    reorder_in_the_trail,
    append_to_closed_segment,
    delete_whole_segment,
    move_event_between_segments,
    swap_segment_names,
]


async def test_two_writers_keep_their_own_segments_and_the_trail_verifies(trail: Trail) -> None:
    chains = await trail.store.read(audit_chains)
    segments = await trail.store.read(_segments)
    # each writer rotated at each new month: two closed segments and an open one each, plus the shared chain
    assert [len(segments[w]) for w in ("a", "b")] == [3, 3]
    assert sorted(c.chain for c in chains if not c.closed) == sorted(
        ["main", str(trail.writers["a"].chain), str(trail.writers["b"].chain)]
    )
    assert sum(c.link for c in chains) == 3 * (4 + 3 + 2)
    assert await trail.verify() == (True, "None")


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.__name__ for a in ATTACKS])
async def test_every_attack_on_the_stored_segments_fails_verification(
    trail: Trail, attack: Callable[[Tx], None]
) -> None:
    assert (await trail.verify())[0]
    await trail.store.write(attack)
    ok, problem = await trail.verify()
    assert not ok, f"{attack.__name__} went unnoticed"
    assert problem


# --- across pruned and exported files ----------------------------------------------------------------------------


async def _pruned(trail: Trail) -> list[Path]:
    result = await prune_audit_trail(
        trail.store, trail.anchor, recorded_before="2019-03-01T00:00:00.000Z", export_dir=trail.export_dir
    )
    assert result.months == (201901, 201902)
    assert result.removed == 2 * (4 + 3 + 2)
    assert await trail.verify() == (True, "None")
    return list(result.exports)


def _shared_files(files: list[Path]) -> list[Path]:
    return sorted(f for f in files if "-main-" in f.name)


async def test_prune_exports_each_segment_and_the_whole_trail_still_verifies(trail: Trail) -> None:
    files = await _pruned(trail)
    # one file per segment of each writer, and the shared chain's two months
    assert len(files) == 2 + 2 + 2
    remaining = await trail.store.read(lambda tx: tx.query_one("SELECT COUNT(*) FROM audit_events"))
    assert remaining is not None
    assert int(remaining[0]) == 4 + 3 + 2


async def test_an_exported_file_removed_from_the_middle_of_a_chain_is_caught(trail: Trail) -> None:
    files = await _pruned(trail)
    _shared_files(files)[0].unlink()
    ok, problem = await trail.verify()
    assert not ok
    assert "in no exported file" in problem


async def test_the_last_exported_file_of_a_chain_removed_is_caught(trail: Trail) -> None:
    files = await _pruned(trail)
    _shared_files(files)[-1].unlink()
    ok, problem = await trail.verify()
    assert not ok
    assert "exported files end at" in problem


async def test_an_exported_segment_removed_is_caught(trail: Trail) -> None:
    files = await _pruned(trail)
    next(f for f in files if "-main-" not in f.name).unlink()
    ok, problem = await trail.verify()
    assert not ok
    assert "exported files end at" in problem


async def test_lines_reordered_or_edited_in_an_exported_file_are_caught(trail: Trail) -> None:
    files = await _pruned(trail)
    target = next(f for f in files if "-main-" not in f.name)
    original = target.read_bytes()
    lines = original.splitlines()
    lines[0], lines[1] = lines[1], lines[0]
    target.write_bytes(b"\n".join(lines) + b"\n")
    assert not (await trail.verify())[0]
    target.write_bytes(original.replace(b'\\"u\\"', b'\\"x\\"', 1))
    assert original != target.read_bytes()
    assert not (await trail.verify())[0]
    target.write_bytes(original)
    assert (await trail.verify())[0]
