"""Ingest workers sharing one PostgreSQL: one owner per adapter at a time, and a survivor takes over from a
worker killed with SIGKILL mid-sync — the store it leaves equals a clean run's."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import anyio
import anyio.to_thread
import pytest

from bcconnect.cli.demo_cmd import write_demo_config
from bcconnect.config import FetchSettings
from bcconnect.ingest import Lease, acquire_lease, list_leases, release_lease, sync_adapter
from bcconnect.mapping import load_mapping_set
from bcconnect.store import Store, open_store
from bcconnect.view import View, export_view_ndjson
from bcconnect_sandbox import FaultSettings, SandboxSettings, running_sandboxes
from support.sandbox_world import world_adapters

from .conftest import free_port

pytestmark = pytest.mark.anyio

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"


async def test_one_owner_at_a_time_and_an_expired_lease_moves(store_url: str) -> None:
    """A holds the lease; B is refused while it lives; once it expires B takes it; A's renewal then fails."""
    async with open_store(store_url) as store:

        async def take(owner: str, now: float, ttl: float = 30.0) -> bool:
            return await store.write(lambda tx: acquire_lease(tx, "adapter:rl4", owner=owner, ttl_seconds=ttl, now=now))

        assert await take("A", now=1000)
        assert not await take("B", now=1010)
        assert await take("A", now=1020)  # renewal pushes the expiry on
        assert not await take("B", now=1045)
        assert await take("B", now=1051)  # A stopped renewing at 1020: expired at 1050
        assert not await take("A", now=1052)
        leases = await store.read(list_leases)
        assert [(lease.owner, lease.taken_at) for lease in leases] == [("B", 1051)]
        await store.write(lambda tx: release_lease(tx, "adapter:rl4", owner="B"))
        assert await take("A", now=1053)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema (the workers are separate processes, so this cannot be SQLite in memory)."""
    base = os.environ.get("BCCONNECT_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("BCCONNECT_TEST_POSTGRES_URL is not set: CI must test PostgreSQL")
        pytest.skip("BCCONNECT_TEST_POSTGRES_URL is not set (scripts/test-postgres start prints one)")
    import psycopg

    schemas = []

    def make() -> str:
        schema = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        schemas.append(schema)
        sep = "&" if "?" in base else "?"
        return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"

    yield make()
    with psycopg.connect(base, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


async def _wait_for(condition, what: str, *, seconds: float = 60, state: object = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition():
            return
        await anyio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}" + (f"; last seen: {state}" if state is not None else ""))


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.ndjson"))}


async def _export(store: Store, out: Path) -> dict[str, bytes]:
    await export_view_ndjson(View(store), out)
    return await anyio.to_thread.run_sync(_files, out)


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_survivor_takes_over_from_a_killed_worker_and_the_store_equals_a_clean_run(
    tmp_path: Path, pg_url: str
) -> None:
    """Two ``bcconnect run`` workers; the one holding RL4 is SIGKILLed mid-sync; the other takes RL4 over after
    the lease expires and finishes; the export equals that of one clean sync of the same source."""
    faults = FaultSettings(latency_ms=40)  # slow pages, so the kill lands mid-sync
    settings = SandboxSettings(density=0, persons=120, seed=11, trusts=("RL4",), faults=faults)
    async with running_sandboxes(settings) as world:
        configs, environ = world_adapters(world, hl7_drop_dir=tmp_path / "drop")
        configs = [replace(c, fetch=FetchSettings(page_size=20), schedule_seconds=3600) for c in configs]
        config_path = write_demo_config(tmp_path / "deploy", port=free_port(), configs=configs, environ=environ)
        env = {
            **os.environ,
            **environ,
            "BCCONNECT_STORE_URL": pg_url,
            "BCCONNECT_INGEST_LEASE_SECONDS": "3",
            "BCCONNECT_LOG_FORMAT": "json",
        }
        async with open_store(pg_url) as store:
            workers = [
                subprocess.Popen(  # noqa: ASYNC220 - long-lived workers, watched below
                    [sys.executable, "-m", "bcconnect.cli.main", "--config", str(config_path), "run"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(2)
            ]
            try:

                async def holder_has_committed() -> bool:
                    leases = await store.read(list_leases)
                    cursor = await store.read(lambda tx: tx.query_one("SELECT COUNT(*) FROM cursors"))
                    return bool(leases) and bool(cursor and cursor[0])

                await _wait_for(holder_has_committed, "the first worker to commit a page")
                holder = (await store.read(list_leases))[0].owner
                victim = next(w for w in workers if f":{w.pid}:" in holder)
                survivor = next(w for w in workers if w is not victim)
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
                killed_at = time.time()

                async def survivor_finished() -> bool:
                    leases = await store.read(list_leases)
                    done = await store.read(
                        lambda tx: tx.query_one(
                            "SELECT COUNT(*) FROM ingest_runs WHERE ok = 1 AND finished_at IS NOT NULL"
                        )
                    )
                    return bool(leases and f":{survivor.pid}:" in leases[0].owner and done and done[0])

                await _wait_for(survivor_finished, "the survivor to take the lease and finish a sync", seconds=120)
                taken = (await store.read(list_leases))[0]
                assert taken.taken_at >= killed_at - 0.5  # taken over after the kill, not before
                assert survivor.poll() is None
            finally:
                for worker in workers:
                    if worker.poll() is None:
                        worker.send_signal(signal.SIGKILL)
                        worker.wait(timeout=10)
            after_failover = await _export(store, tmp_path / "failover")

        # the clean run: one sync of the same source into a fresh store (SQLite: the export must not depend on
        # the backend either)
        async with open_store(f"sqlite:///{tmp_path / 'clean.db'}") as clean:
            rl4 = configs[0]
            report = await sync_adapter(
                rl4, store=clean, mapping_set=load_mapping_set(MAPPINGS / rl4.mapping_set), environ=environ
            )
            assert report.ok
            clean_export = await _export(clean, tmp_path / "clean")
    assert after_failover.keys() == clean_export.keys()
    assert sum(len(v) for v in clean_export.values()) > 0
    for name in clean_export:
        assert after_failover[name] == clean_export[name], name


@pytest.mark.postgres
@pytest.mark.slow
async def test_workers_share_one_adapters_resource_types_and_a_survivor_takes_the_killed_workers_types(
    tmp_path: Path, pg_url: str
) -> None:
    """``lease_by = "resource_type"``: two workers split RL4's resource types between them (a lease each); the
    one holding Observation is SIGKILLed mid-sync; the survivor takes its types over once their leases expire,
    and the store then exports exactly what one clean sync of the same source exports."""
    faults = FaultSettings(latency_ms=40)
    settings = SandboxSettings(density=0, persons=120, seed=11, trusts=("RL4",), faults=faults)
    async with running_sandboxes(settings) as world:
        configs, environ = world_adapters(world, hl7_drop_dir=tmp_path / "drop")
        configs = [replace(c, fetch=FetchSettings(page_size=20), schedule_seconds=3600) for c in configs]
        async with open_store(f"sqlite:///{tmp_path / 'clean.db'}") as clean:
            rl4 = configs[0]
            report = await sync_adapter(
                rl4, store=clean, mapping_set=load_mapping_set(MAPPINGS / rl4.mapping_set), environ=environ
            )
            assert report.ok
            clean_export = await _export(clean, tmp_path / "clean")
        assert sum(len(v) for v in clean_export.values()) > 0
        config_path = write_demo_config(tmp_path / "deploy", port=free_port(), configs=configs, environ=environ)
        env = {
            **os.environ,
            **environ,
            "BCCONNECT_STORE_URL": pg_url,
            "BCCONNECT_INGEST_LEASE_SECONDS": "3",
            "BCCONNECT_INGEST_LEASE_BY": "resource_type",
            "BCCONNECT_LOG_FORMAT": "json",
        }
        logs = [(tmp_path / f"worker-{n}.log").open("wb") for n in range(2)]  # kept for a failure's post-mortem
        async with open_store(pg_url) as store:
            workers = [
                subprocess.Popen(  # noqa: ASYNC220 - long-lived workers, watched below
                    [sys.executable, "-m", "bcconnect.cli.main", "--config", str(config_path), "run"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
                for log in logs
            ]
            try:

                async def type_leases() -> list[Lease]:
                    return [lease for lease in await store.read(list_leases) if lease.name.startswith("adapter:")]

                async def both_work_and_observations_started() -> bool:
                    leases = await type_leases()
                    owners = {lease.owner for lease in leases}
                    cursor = await store.read(lambda tx: tx.query_one("SELECT cursor FROM cursors"))
                    observed = any(lease.name == "adapter:rl4:Observation" for lease in leases)
                    return len(owners) == 2 and observed and bool(cursor and cursor[0])

                await _wait_for(both_work_and_observations_started, "two workers each holding some of RL4's types")
                leases = await type_leases()
                assert all(lease.name.startswith("adapter:rl4:") for lease in leases)  # one lease per type
                holder = next(lease.owner for lease in leases if lease.name == "adapter:rl4:Observation")
                victim = next(w for w in workers if f":{w.pid}:" in holder)
                survivor = next(w for w in workers if w is not victim)
                victims_types = {lease.name for lease in leases if lease.owner == holder}
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
                killed_at = time.time()

                seen: dict[str, object] = {}

                async def survivor_caught_up() -> bool:
                    leases = await type_leases()
                    seen["leases"] = [(lease.name, lease.owner) for lease in leases]
                    if not leases or any(f":{survivor.pid}:" not in lease.owner for lease in leases):
                        return False
                    export = await _export(store, tmp_path / "failover")
                    seen["differs"] = {
                        name: (export.get(name, b"").count(b"\n"), clean_export[name].count(b"\n"))
                        for name in clean_export
                        if export.get(name) != clean_export[name]
                    }
                    return export == clean_export

                await _wait_for(
                    survivor_caught_up, "the survivor to take every type over and catch up", seconds=180, state=seen
                )
                taken = {lease.name: lease for lease in await type_leases()}
                assert victims_types <= taken.keys()
                assert all(taken[name].taken_at >= killed_at - 0.5 for name in victims_types)
                assert survivor.poll() is None
            finally:
                for worker in workers:
                    if worker.poll() is None:
                        worker.send_signal(signal.SIGKILL)
                        worker.wait(timeout=10)
                for log in logs:
                    log.close()
            after_failover = await _export(store, tmp_path / "failover")
    assert after_failover == clean_export
