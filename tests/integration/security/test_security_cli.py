"""The security commands end to end on a SQLite store: token issue, objection add/list/remove, audit verify."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio
import pytest

from bcconnect.cli import security_cmd
from bcconnect.config import AuthSettings
from bcconnect.security import build_authenticator, ensure_local_issuer
from bcconnect.store import Tx, open_store


def run(config: Path, *argv: str) -> int:
    """Parse and run one command the way the main entry point does (global options first)."""
    parser = argparse.ArgumentParser(prog="bcconnect")
    parser.add_argument("--config")
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--log-format", default=None)
    sub = parser.add_subparsers(dest="command")
    security_cmd.register(sub)
    args = parser.parse_args(["--config", str(config), "--log-format", "json", *argv])
    code: int = args.handler(args)
    return code


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bcconnect.toml"
    path.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "data" / "bc.db"}"\n[paths]\ndata_dir = "data"\n', encoding="utf-8"
    )
    return path


def test_token_issue_prints_a_token_the_server_trusts(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The last stdout line is a JWT signed by the key in the data dir; it authenticates with its claims."""
    assert (
        run(
            config,
            "token",
            "issue",
            "--scope",
            "user/*.rs",
            "--scope",
            "system/AuditEvent.rs",
            "--user",
            "912345678901",
            "--org",
            "RBK",
            "--ttl",
            "120",
        )
        == 0
    )
    token = capsys.readouterr().out.strip().splitlines()[-1]
    issuer = ensure_local_issuer(tmp_path / "data")
    authenticator = build_authenticator(AuthSettings(issuers=(issuer.as_jwt_issuer(),)), root=tmp_path)
    who = anyio.run(authenticator.authenticate, f"Bearer {token}")
    assert (who.user, who.organisation, who.purpose) == ("912345678901", "RBK", "directcare")
    assert who.scopes.raw == ("user/*.rs", "system/AuditEvent.rs")


def test_objection_commands_add_list_and_remove(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """add → listed → remove → gone; a bad NHS number is a usage error raised to the entry point."""
    assert run(config, "objection", "add", "9990000018", "--note", "via GP") == 0
    assert run(config, "objection", "list") == 0
    assert "9990000018\tmanual" in capsys.readouterr().out
    assert run(config, "objection", "remove", "9990000018") == 0
    assert "removed 1" in capsys.readouterr().out
    run(config, "objection", "list")
    assert capsys.readouterr().out == ""


def test_audit_verify_reports_intact_then_broken(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0 on an intact (empty) trail; exit 1 naming the event once a row is edited."""
    from datetime import UTC, datetime

    from bcconnect.security import AuditRecord, append_audit_event, build_audit_event

    assert run(config, "audit", "verify") == 0
    assert "intact: 0" in capsys.readouterr().out

    async def seed_and_tamper() -> None:
        async with open_store(f"sqlite:///{tmp_path / 'data' / 'bc.db'}") as store:
            for n in range(3):
                rec = AuditRecord(
                    recorded=datetime.now(UTC),
                    interaction="read",
                    status=200,
                    method="GET",
                    path="/fhir/Patient/p1",
                    patients=("Patient/p1",),
                )
                event = build_audit_event(rec, event_id=f"e{n}")

                def append(tx: Tx, e: dict[str, Any] = event) -> None:
                    append_audit_event(tx, e, patients=("Patient/p1",))

                await store.write(append)
            await store.write(lambda tx: tx.execute("UPDATE audit_events SET body = '{}', body_z = NULL WHERE seq = 2"))

    anyio.run(seed_and_tamper)
    assert run(config, "audit", "verify") == 1
    assert "BROKEN at event 2" in capsys.readouterr().out
