"""``bcconnect export`` (issue item 11): persons who object to the shared record are not exported, in either form,
and the export is audited (who, what) in the same hash chain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from bcconnect.security import add_objection, search_audit_events, verify_audit_chain
from bcconnect.security._audit_codec import unpack
from bcconnect.store import open_store, put_resources
from support.security_world import OBJECTOR_NHS, world

BCCONNECT = [sys.executable, "-m", "bcconnect.cli.main"]


@pytest.mark.parametrize("raw", [False, True])
def test_export_leaves_out_objectors_and_is_audited(tmp_path: Path, raw: bool) -> None:
    url = f"sqlite:///{tmp_path / 'bc.db'}"

    async def seed() -> None:
        async with open_store(url) as store:
            await store.write(lambda tx: put_resources(tx, world()))
            await store.write(lambda tx: add_objection(tx, OBJECTOR_NHS))

    anyio.run(seed)
    config = tmp_path / "bcconnect.toml"
    config.write_text(f'[store]\nurl = "{url}"\n', encoding="utf-8")
    out = tmp_path / "export"
    args = [*BCCONNECT, "--config", str(config), "export", "--out", str(out), *(["--raw"] if raw else [])]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    exported = b"".join(p.read_bytes() for p in out.glob("*.ndjson"))
    lines = [orjson.loads(line) for line in exported.splitlines()]
    ids = {f"{r['resourceType']}/{r['id']}" for r in lines}
    assert "Patient/p1" in ids
    assert "Condition/c1" in ids
    assert not {i for i in ids if i == "Patient/p2" or i.split("/")[1].startswith(("c2-", "e2-", "o2-"))}
    assert b"Objectorfamily" not in exported

    async def audited() -> tuple[int, bool]:
        async with open_store(url) as store:
            report = await store.read(verify_audit_chain)
            rows = await store.read(lambda tx: tx.query("SELECT body_z FROM audit_events"))
            bodies = [unpack(bytes(r[0])) for r in rows]
            exports = [orjson.loads(b) for b in bodies if b'"os:' in b]
            assert not await store.read(lambda tx: search_audit_events(tx, patient="p2"))
            return len(exports), report.ok

    count, chain_ok = anyio.run(audited)
    assert count == 1
    assert chain_ok
