"""Anchored audit (issue item 8): the two attacks that pass a self-consistent hash chain — truncating the tail
and rewinding the head, and deleting one event then re-hashing the rest — are caught by the signed checkpoints
kept outside the database, by ``verify_audit_chain`` and by ``bcconnect audit verify``."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import orjson
import pytest

from bcconnect.cli import security_cmd
from bcconnect.security import AuditAnchor, Checkpoint, verify_audit_chain
from bcconnect.security._audit_codec import unpack
from bcconnect.security._audit_store import chain_hash
from bcconnect.store import Tx
from support.security_world import Endpoint, secured

pytestmark = pytest.mark.anyio
EVERY = 5


@pytest.fixture
async def audited(tmp_path: Path) -> AsyncIterator[tuple[Endpoint, AuditAnchor]]:
    """The secured world (SQLite in tmp_path/data) after 22 audited requests: checkpoints at 5, 10, 15, 20."""
    data = tmp_path / "data"
    async with secured(f"sqlite:///{data / 'bc.db'}", data, audit_checkpoint_every=EVERY) as endpoint:
        headers = endpoint.token()
        for _ in range(22):
            assert (await endpoint.client.get("/Patient/p1", headers=headers)).status_code == 200
        yield endpoint, AuditAnchor(data / "bcconnect-data" / "audit-anchor")


def truncate(tx: Tx, keep: int) -> None:
    """The attacker deletes every event after ``keep`` and rewinds the chain's row to match."""
    row = tx.query_one("SELECT hash, chain FROM audit_events WHERE seq = ?", (keep,))
    assert row is not None
    tx.execute("DELETE FROM audit_event_patients WHERE seq > ?", (keep,))
    tx.execute("DELETE FROM audit_events WHERE seq > ?", (keep,))
    tx.execute("UPDATE audit_chains SET link = ?, hash = ? WHERE chain = ?", (keep, row[0], row[1]))


def delete_and_rehash(tx: Tx, victim: int) -> None:
    """The attacker deletes one event, renumbers the rest and recomputes every hash after it."""
    rows = tx.query(
        "SELECT seq, event_id, recorded, body_z, chain, month FROM audit_events WHERE seq > ? ORDER BY seq", (victim,)
    )
    prev = tx.query_one("SELECT hash, chain FROM audit_events WHERE seq = ?", (victim - 1,))
    assert prev is not None
    prev_hash, chain = str(prev[0]), str(prev[1])
    tx.execute("DELETE FROM audit_event_patients WHERE seq >= ?", (victim,))
    tx.execute("DELETE FROM audit_events WHERE seq >= ?", (victim,))
    seq = victim
    for _, event_id, recorded, body_z, _, month in rows:
        digest = chain_hash(seq, prev_hash, unpack(bytes(body_z)))
        tx.execute(
            "INSERT INTO audit_events (seq, chain, link, month, event_id, recorded, prev_hash, hash, body, body_z)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?)",
            (seq, chain, seq, month, event_id, recorded, prev_hash, digest, bytes(body_z)),
        )
        prev_hash, seq = digest, seq + 1
    tx.execute("UPDATE audit_chains SET link = ?, hash = ? WHERE chain = ?", (seq - 1, prev_hash, chain))


async def test_checkpoints_are_written_signed_at_intervals(audited: tuple[Endpoint, AuditAnchor]) -> None:
    endpoint, anchor = audited
    points = anchor.checkpoints()
    assert [p.seq for p in points] == [0, 5, 10, 15, 20]  # the segment's signed opening, then every 5th
    assert all(p.valid for p in points)
    report = await endpoint.store.read(lambda tx: verify_audit_chain(tx, points))
    assert report.ok, report


@pytest.mark.parametrize(("attack", "argument"), [(truncate, 17), (delete_and_rehash, 3)])
async def test_truncation_and_rehashing_pass_the_plain_chain_but_not_the_anchors(
    audited: tuple[Endpoint, AuditAnchor], attack: object, argument: int
) -> None:
    endpoint, anchor = audited
    assert callable(attack)
    await endpoint.store.write(lambda tx: attack(tx, argument))
    plain = await endpoint.store.read(verify_audit_chain)
    assert plain.ok, "the attack keeps the chain self-consistent (that is why anchors are needed)"
    anchored = await endpoint.store.read(lambda tx: verify_audit_chain(tx, anchor.checkpoints()))
    assert not anchored.ok
    assert "truncated" in str(anchored.problem) or "re-hashed" in str(anchored.problem)


async def test_a_forged_checkpoint_is_refused(audited: tuple[Endpoint, AuditAnchor]) -> None:
    """Rewriting the checkpoint file to match a tampered chain breaks its signature."""
    endpoint, anchor = audited
    await endpoint.store.write(lambda tx: truncate(tx, 12))
    lines = anchor.checkpoints_path.read_bytes().splitlines()
    kept = [line for line in lines if orjson.loads(line)["seq"] <= 10]
    forged = orjson.loads(lines[-1]) | {"seq": 12}  # the chain's own checkpoint, renumbered
    anchor.checkpoints_path.write_bytes(b"\n".join([*kept, orjson.dumps(forged)]) + b"\n")
    report = await endpoint.store.read(lambda tx: verify_audit_chain(tx, anchor.checkpoints()))
    assert not report.ok
    assert "signature" in str(report.problem)
    assert not Checkpoint(12, forged["hash"], forged["at"], valid=False).valid


async def test_audit_verify_command_exits_1_on_a_truncated_trail(
    audited: tuple[Endpoint, AuditAnchor], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint, _ = audited
    config = tmp_path / "data" / "bcconnect.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "data" / "bc.db"}"\n', encoding="utf-8")
    parser = argparse.ArgumentParser(prog="bcconnect")
    parser.add_argument("--config")
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--log-format", default=None)
    security_cmd.register(parser.add_subparsers(dest="command"))

    def command(*argv: str) -> int:
        args = parser.parse_args(["--config", str(config), "--log-format", "json", *argv])
        code: int = args.handler(args)
        return code

    async def run(*argv: str) -> int:  # the command runs its own event loop: give it a thread
        return await anyio.to_thread.run_sync(lambda: command(*argv))

    assert await run("audit", "verify") == 0
    assert "5 signed checkpoint(s) agree" in capsys.readouterr().out
    await endpoint.store.write(lambda tx: truncate(tx, 18))
    assert await run("audit", "verify") == 1
    assert "truncated" in capsys.readouterr().out
