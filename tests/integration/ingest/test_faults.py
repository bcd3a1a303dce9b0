"""Faults on: every sync completes, every reconciliation balances, and — once the quarantined records are fixed
and replayed — the store holds exactly what a fault-free run of the same population holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcconnect.config import AdapterConfig, Settings
from bcconnect.ingest import SyncReport, replay_quarantined, sync_adapters
from bcconnect.store import Store, list_quarantine, open_store
from bcconnect.view import View, export_view_ndjson
from bcconnect_sandbox import FaultSettings, SandboxSettings, running_sandboxes

from .conftest import MAPPINGS, adapters_for, mapping_set_for, with_fetch

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FAULTS = FaultSettings(
    seed=7,
    error_rate=0.06,
    burst_429_rate=0.02,
    burst_length=2,
    retry_after_seconds=1,
    reset_rate=0.03,
    truncated_rate=0.03,
    malformed_rate=0.03,
    timeout_rate=0.01,
    hang_seconds=3.0,
    duplicate_rate=0.08,
    out_of_order_rate=0.05,
    hl7_malformed_rate=0.06,
)


async def _sync_world(
    settings: SandboxSettings, tmp_path: Path, store: Store
) -> tuple[list[SyncReport], dict[str, dict[str, int]], dict[str, AdapterConfig]]:
    drop = tmp_path / "drop"
    async with running_sandboxes(settings, hl7_drop_dir=drop) as world:
        await world.deliver_hl7()
        configs, environ = adapters_for(world, tmp_path)
        configs = {k: with_fetch(c, timeout_seconds=1.0) for k, c in configs.items()}
        engine = Settings(root=tmp_path)
        engine = Settings(root=tmp_path, paths=engine.paths.__class__(mappings_dir=str(MAPPINGS)))
        reports = await sync_adapters(list(configs.values()), settings=engine, store=store, environ=environ)
        return reports, world.fault_counts(), configs


def _repair_hl7(payload: bytes) -> bytes:
    """What an operator does to the sandbox's broken messages: put back the lost field separator."""
    segments = payload.decode().split("\r")
    segments = [s if len(s) < 4 or s[3] == "|" or s.startswith("MSH") else f"{s[:3]}|{s[3:]}" for s in segments]
    return "\r".join(segments).encode()


async def test_faulty_trusts_load_completely_and_match_a_clean_run(tmp_path: Path) -> None:
    """Against 5xx, 429 bursts, timeouts, resets, broken bodies, duplicates, out-of-order deliveries and
    malformed HL7, each sync completes and balances; malformed records wait in quarantine with a reason and
    replay cleanly once repaired; the final store equals a fault-free run's."""
    population = SandboxSettings(density=0, persons=50, seed=21)
    async with open_store(f"sqlite:///{tmp_path / 'clean.db'}") as clean_store:
        clean_reports, _, _ = await _sync_world(population, tmp_path / "clean", clean_store)
        assert all(r.ok and r.balanced and r.quarantined == 0 for r in clean_reports), clean_reports
        await export_view_ndjson(View(clean_store), tmp_path / "clean-export")

    faulty = SandboxSettings(density=0, persons=50, seed=21, faults=FAULTS)
    async with open_store(f"sqlite:///{tmp_path / 'faulty.db'}") as store:
        reports, counts, configs = await _sync_world(faulty, tmp_path / "faulty", store)
        for report in reports:
            assert report.ok, report.error
            assert report.balanced, report.as_dict()
        served = {name: n for trust in counts.values() for name, n in trust.items()}
        for fault in ("http_5", "429", "reset", "truncated", "malformed", "duplicate", "hl7_malformed"):
            assert any(fault in name and n > 0 for name, n in served.items()), (fault, counts)

        quarantined = await store.read(lambda tx: list_quarantine(tx, limit=1000))
        assert quarantined, "malformed HL7 messages should wait in quarantine"
        rbk = next(r for r in reports if r.adapter == "rbk")
        assert rbk.quarantined == len([q for q in quarantined if q.entry.adapter == "rbk"])
        for record in quarantined:
            assert record.entry.message, "every quarantined record says why"
            result = await replay_quarantined(
                record.id,
                config=configs["RBK"],
                store=store,
                mapping_set=mapping_set_for(configs["RBK"]),
                payload=_repair_hl7(record.entry.payload),
            )
            assert result.resolved, result.message
        assert await store.read(lambda tx: list_quarantine(tx)) == []
        await export_view_ndjson(View(store), tmp_path / "faulty-export")

    clean_files = sorted(p.name for p in (tmp_path / "clean-export").iterdir())
    assert clean_files == sorted(p.name for p in (tmp_path / "faulty-export").iterdir())
    for name in clean_files:
        clean_lines = (tmp_path / "clean-export" / name).read_bytes().splitlines()
        faulty_lines = (tmp_path / "faulty-export" / name).read_bytes().splitlines()
        assert faulty_lines == clean_lines, name
