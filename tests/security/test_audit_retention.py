"""Retention of the audit trail: prune exports, checkpoints, then drops; verification survives it and still
catches events removed any other way, and an export edited in the log store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bcconnect.cli import security_cmd
from bcconnect.errors import UsageError
from bcconnect.security import (
    AuditAnchor,
    append_audit_event,
    prune_audit_trail,
    verify_audit_chain,
    verify_audit_export,
)
from bcconnect.store import Store, Tx, open_store

pytestmark = pytest.mark.anyio


def _event(n: int, year: int) -> dict[str, Any]:
    return {"resourceType": "AuditEvent", "id": f"ev-{n}", "recorded": f"{year}-03-01T10:00:{n % 60:02d}.000Z"}


async def _seed(store: Store) -> None:
    for n in range(1, 11):
        year = 2017 if n <= 6 else 2026
        await store.write(lambda tx, n=n, y=year: append_audit_event(tx, _event(n, y), patients=[f"Patient/p{n}"]))


async def test_prune_exports_checkpoints_and_drops_and_the_trail_still_verifies(tmp_path: Path) -> None:
    anchor = AuditAnchor(tmp_path / "anchor")
    async with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        await _seed(store)
        result = await prune_audit_trail(
            store, anchor, recorded_before="2020-01-01T00:00:00.000Z", export_dir=tmp_path / "shipped"
        )
        assert (result.removed, result.months) == (6, (201703,))
        (export,) = result.exports
        assert [orjson.loads(line)["seq"] for line in export.read_bytes().splitlines()] == [1, 2, 3, 4, 5, 6]
        points = anchor.checkpoints()
        report = await store.read(lambda tx: verify_audit_chain(tx, points))
        assert (report.ok, report.events) == (True, 4), report
        assert verify_audit_export(export, points).ok
        # the chain goes on from where it was
        await store.write(lambda tx: append_audit_event(tx, _event(11, 2026)))
        report = await store.read(lambda tx: verify_audit_chain(tx, anchor.checkpoints()))
        assert (report.ok, report.events) == (True, 5), report
        # nothing older is left: a second prune drops nothing
        again = await prune_audit_trail(
            store, anchor, recorded_before="2020-01-01T00:00:00.000Z", export_dir=tmp_path / "shipped"
        )
        assert again.removed == 0


async def test_events_removed_without_prune_still_fail_verification(tmp_path: Path) -> None:
    """An attacker deletes the oldest events and writes a base row: no signed checkpoint names it."""
    anchor = AuditAnchor(tmp_path / "anchor")
    async with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        await _seed(store)

        def cut(tx: Tx) -> None:
            row = tx.query_one("SELECT hash FROM audit_events WHERE seq = 3")
            assert row is not None
            tx.execute("DELETE FROM audit_event_patients WHERE seq <= 3")
            tx.execute("DELETE FROM audit_events WHERE seq <= 3")
            tx.execute("UPDATE audit_chains SET base_link = 3, base_hash = ? WHERE chain = 'main'", (row[0],))

        await store.write(cut)
        report = await store.read(lambda tx: verify_audit_chain(tx, anchor.checkpoints()))
        assert not report.ok
        assert "no signed checkpoint" in str(report.problem)


async def test_an_export_edited_in_the_log_store_fails_verification(tmp_path: Path) -> None:
    anchor = AuditAnchor(tmp_path / "anchor")
    async with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        await _seed(store)
        result = await prune_audit_trail(
            store, anchor, recorded_before="2020-01-01T00:00:00.000Z", export_dir=tmp_path / "shipped"
        )
    (export,) = result.exports
    lines = export.read_bytes().splitlines()
    edited = orjson.loads(lines[2])
    edited["event"] = edited["event"].replace("ev-3", "ev-X")
    lines[2] = orjson.dumps(edited)
    export.write_bytes(b"\n".join(lines) + b"\n")
    report = verify_audit_export(export, anchor.checkpoints())
    assert (report.ok, report.first_bad_seq) == (False, 3)
    # and dropping a whole exported file's tail is caught by the checkpoint of its last event
    export.write_bytes(b"\n".join(lines[:2]) + b"\n")
    assert "no signed checkpoint" in str(verify_audit_export(export, anchor.checkpoints()).problem)


def _run(config: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bcconnect")
    parser.add_argument("--config")
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--log-format", default=None)
    security_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["--config", str(config), "--log-format", "json", *argv])
    code: int = args.handler(args)
    return code


def test_the_prune_command_ships_to_the_configured_log_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bcconnect.toml"
    store_url = f"sqlite:///{tmp_path / 'data' / 'bc.db'}"
    base = f'[store]\nurl = "{store_url}"\n[paths]\ndata_dir = "data"\n'
    config.write_text(base, encoding="utf-8")

    async def seed() -> None:
        async with open_store(store_url) as store:
            await _seed(store)

    anyio.run(seed)
    with pytest.raises(UsageError, match="export_dir"):
        _run(config, "audit", "prune", "--before", "2020-01-01")
    config.write_text(base + '[audit]\nexport_dir = "shipped"\n', encoding="utf-8")
    assert _run(config, "audit", "prune", "--before", "2020-01-01") == 0
    assert "pruned 6 audit event(s)" in capsys.readouterr().out
    assert _run(config, "audit", "verify") == 0
    verified = capsys.readouterr().out
    assert "4 event(s)" in verified
    assert "1 exported file(s) intact and joined" in verified
    shipped = next((tmp_path / "shipped").glob("audit-*.ndjson"))
    shipped.write_bytes(shipped.read_bytes().replace(b"ev-2", b"ev-Z"))
    assert _run(config, "audit", "verify") == 1
