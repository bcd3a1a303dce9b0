"""`bcconnect triage worklist` and `bcconnect waiting-list …` as a user runs them (a subprocess, real config)."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from bcconnect.view import OPEN_ACCESS

from .conftest import SyncedWorld

pytestmark = pytest.mark.anyio

BIN = Path(sys.executable).with_name("bcconnect")


async def _cli(world: SyncedWorld, *args: str) -> tuple[int, str, str]:
    config = world.data_dir / "cli.toml"
    config.write_text(f'[store]\nurl = "{world.store_url}"\n', encoding="utf-8")
    done = await anyio.run_process([str(BIN), "--config", str(config), "--log-level", "error", *args], check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_worklist_as_json_csv_and_table(synced: SyncedWorld) -> None:
    """The three formats carry the same rows; JSON rows are the truth's ENT referrals awaiting triage."""
    as_of = synced.as_of.isoformat()
    code, out, err = await _cli(synced, "triage", "worklist", "--network", "ENT", "--as-of", as_of, "--format", "json")
    assert code == 0, err
    rows = orjson.loads(out)
    want = {
        r["ubrn"]
        for r in synced.referrals
        if r["network"] == "ENT" and r["triage"] == "awaiting" and r["open"] == "Y" and r["objects"] == "N"
    }
    assert {r["ubrn"] for r in rows} == want
    code, out, _ = await _cli(synced, "triage", "worklist", "--network", "ENT", "--as-of", as_of, "--format", "csv")
    assert code == 0
    assert len(list(csv.DictReader(io.StringIO(out)))) == len(rows)
    code, out, _ = await _cli(synced, "triage", "worklist", "--network", "ENT", "--as-of", as_of)
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["priority", "days_waiting", "trust"]
    assert out.rstrip().endswith(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


async def test_waiting_list_summary_long_waiters_and_mutual_aid(synced: SyncedWorld) -> None:
    """Summary sizes add up to the open pathways; long waiters are all past the threshold; mutual aid runs."""
    as_of = synced.as_of.isoformat()
    code, out, err = await _cli(synced, "waiting-list", "summary", "--as-of", as_of, "--format", "json")
    assert code == 0, err
    summary = orjson.loads(out)
    assert {"trust", "tfc", "size", "median_weeks", "p92_weeks", "within_18_weeks_pct", "over_52"} <= set(summary[0])
    code, out, _ = await _cli(
        synced, "waiting-list", "long-waiters", "--min-weeks", "26", "--as-of", as_of, "--format", "json"
    )
    assert code == 0
    long_waiters = orjson.loads(out)
    assert long_waiters
    assert all(r["weeks_waited"] >= 26 for r in long_waiters)
    assert len(long_waiters) <= sum(s["size"] for s in summary)
    code, out, _ = await _cli(synced, "waiting-list", "mutual-aid", "--as-of", as_of, "--format", "csv")
    assert code == 0
    assert out.splitlines()[0].startswith("weeks_waited,trust,tfc,ppi")


async def test_misuse_is_one_sentence_and_exit_2(synced: SyncedWorld) -> None:
    """An unknown network, a bad date or a missing option: one sentence on stderr, exit 2, no traceback."""
    for args in (
        ("triage", "worklist", "--network", "Cardiology"),
        ("triage", "worklist", "--network", "ENT", "--as-of", "yesterday"),
        ("triage", "worklist"),
        ("waiting-list", "mutual-aid", "--with-pairing", "Nowhere"),
    ):
        code, _, err = await _cli(synced, *args)
        assert code == 2, args
        assert "Traceback" not in err
        assert err.startswith("bcconnect: error:"), err


async def test_rebuild_reports_what_the_read_model_holds(synced: SyncedWorld) -> None:
    """`bcconnect triage rebuild` builds the read model from the store and its counts reconcile with the
    referrals the view serves (the model holds objectors' rows too: answers screen them when read)."""
    code, out, err = await _cli(synced, "triage", "rebuild", "--format", "json")
    assert code == 0, err
    (row,) = orjson.loads(out)
    served = (await synced.view.search(OPEN_ACCESS, "ServiceRequest", [("_count", "0")])).page.total
    assert served is not None
    assert row["referrals"] >= served > 0
    assert 0 < row["running"] <= row["pathways"] <= row["pathway parts"]
    assert row["resources read"] >= row["referrals"] + row["pathway parts"]
