"""``[store] read_url``: the API reads from a real PostgreSQL streaming replica, and says how far behind it is.

``scripts/test`` starts a hot standby of the test cluster (``scripts/test-postgres start-replica``: a base backup
with ``pg_basebackup -R`` on a free loopback port). The test writes on the primary, pauses WAL replay on the
replica and shows that the endpoint does not see the new row (its reads go to the replica) while its freshness
(Bundle ``meta`` extension, response header), ``/readyz`` and ``/metrics`` report the lag; after replay resumes
the row appears and the lag returns to zero. Writes the endpoint makes (the audit trail) land on the primary.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import orjson
import pytest

from bcconnect.security import count_audit_events
from bcconnect.store import ResourceWrite, Store, open_store, put_resources, set_cursor
from bcconnect.view import FRESHNESS_EXTENSION, FRESHNESS_HEADER

from .conftest import no_auth_settings, parse_exposition, serving, value

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

PRIMARY_ENV, REPLICA_ENV = "BCCONNECT_TEST_POSTGRES_URL", "BCCONNECT_TEST_POSTGRES_REPLICA_URL"


@pytest.fixture
def urls() -> Iterator[tuple[str, str]]:
    """A fresh schema on the primary, and the URLs of primary and replica that use it."""
    primary, replica = os.environ.get(PRIMARY_ENV), os.environ.get(REPLICA_ENV)
    if not primary or not replica:
        if os.environ.get("CI"):
            pytest.fail(f"{PRIMARY_ENV} and {REPLICA_ENV} must be set in CI (scripts/test starts both)")
        pytest.skip(f"{REPLICA_ENV} is not set (scripts/test-postgres start-replica prints one)")
    import psycopg

    schema = f"r_{secrets.token_hex(6)}"
    with psycopg.connect(primary, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    option = f"options={quote(f'-csearch_path={schema}')}"
    try:
        yield f"{primary}?{option}", f"{replica}?{option}"
    finally:
        with psycopg.connect(replica, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")  # never leave the shared replica paused
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def patient(pid: str) -> ResourceWrite:
    """A small Patient."""
    body = {"resourceType": "Patient", "id": pid, "name": [{"family": "Replica", "given": [pid]}]}
    return ResourceWrite("Patient", pid, orjson.dumps(body), source="rl4", compartment=pid)


@contextmanager
def replay_paused(replica_url: str) -> Iterator[None]:
    """WAL replay paused on the replica (it keeps receiving WAL, but applies none of it)."""
    import psycopg

    with psycopg.connect(replica_url, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        with psycopg.connect(replica_url, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")


async def eventually(check: Any, *, seconds: float = 30.0, interval: float = 0.1) -> None:
    """Poll ``await check()`` until it is true (replication is asynchronous), failing after ``seconds``."""
    with anyio.fail_after(seconds):
        while not await check():  # noqa: ASYNC110 - polling another server's state: there is no event to await
            await anyio.sleep(interval)


def replica_lag(bundle: dict[str, Any]) -> float | None:
    """The replica lag the Bundle's freshness extension states for source rl4."""
    for group in bundle["meta"]["extension"]:
        if group["url"] != FRESHNESS_EXTENSION:
            continue
        parts = {p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in group["extension"]}
        if parts["source"] == "rl4":
            return float(parts["replicaLagSeconds"]) if "replicaLagSeconds" in parts else None
    raise AssertionError(f"no freshness for rl4 in {bundle['meta']}")


@pytest.fixture
async def stores(urls: tuple[str, str]) -> AsyncIterator[tuple[Store, Store, str]]:
    """The primary (migrated, holding Patient p1 and a cursor for rl4) and the replica once it has replayed it."""
    primary_url, replica_url = urls
    async with open_store(primary_url) as primary:
        await primary.write(lambda tx: (put_resources(tx, [patient("p1")]), set_cursor(tx, "rl4", "page-1")))
        async with open_store(replica_url, migrate=False) as replica:
            assert replica.is_replica
            assert not primary.is_replica

            async def replayed() -> bool:
                try:
                    rows = await replica.read(lambda tx: tx.query("SELECT 1 FROM cursors WHERE adapter = 'rl4'"))
                except Exception:  # noqa: BLE001 - the schema itself may not have been replayed yet
                    return False
                return bool(rows)

            await eventually(replayed)
            yield primary, replica, replica_url


async def test_reads_come_from_the_replica_and_its_lag_is_reported(
    stores: tuple[Store, Store, str], tmp_path: Path
) -> None:
    primary, replica, replica_url = stores
    settings = no_auth_settings(tmp_path)
    settings = replace(settings, store=replace(settings.store, read_max_lag_seconds=1.0))
    async with serving(settings, primary, read_store=replica) as client:
        # every request writes its AuditEvent on the primary, and the replica replays that WAL a moment later:
        # between the two it is honestly "behind" by the age of its last replayed transaction, so the test waits
        # for a moment when it has replayed everything, as a client would see most of the time
        async def reported_current() -> bool:
            answer = await client.get("/fhir/Patient", params={"_id": "p1"})
            assert answer.status_code == 200, answer.text
            return replica_lag(answer.json()) == 0.0 and "replica-lag=0.0" in answer.headers[FRESHNESS_HEADER]

        await eventually(reported_current, interval=0.5)

        async def ready_and_current() -> bool:
            ready = await client.get("/readyz")
            return ready.status_code == 200 and ready.json()["notes"]["replica"] == "0.0 s behind the primary"

        await eventually(ready_and_current, interval=0.5)

        with replay_paused(replica_url):
            await primary.write(lambda tx: put_resources(tx, [patient("p2")]))

            async def lag_shows() -> bool:
                answer = await client.get("/fhir/Patient", params={"_id": "p1"})
                lag = replica_lag(answer.json())
                return lag is not None and lag > 1.0

            await eventually(lag_shows)
            # the primary has p2; the endpoint, reading the paused replica, does not
            assert await primary.read(lambda tx: tx.query("SELECT 1 FROM resources WHERE res_id = 'p2'"))
            assert (await client.get("/fhir/Patient/p2")).status_code == 404
            behind = await client.get("/fhir/Patient", params={"_id": "p1"})
            assert "replica-lag=" in behind.headers[FRESHNESS_HEADER]
            assert "replica-lag=0.0" not in behind.headers[FRESHNESS_HEADER]
            not_ready = await client.get("/readyz")
            assert not_ready.status_code == 503
            assert "behind the primary (allowed: 1 s)" in not_ready.json()["checks"]["replica"]
            samples = parse_exposition((await client.get("/metrics")).text)
            assert value(samples, "bcconnect_store_replica_up") == 1
            assert value(samples, "bcconnect_store_replica_lag_seconds") > 1.0

        async def p2_visible() -> bool:
            return (await client.get("/fhir/Patient/p2")).status_code == 200

        await eventually(p2_visible)

        await eventually(reported_current, interval=0.5)
        await eventually(ready_and_current, interval=0.5)
        # a Bulk Data kick-off writes its job row: on the primary (the replica would refuse the write)
        kickoff = await client.get(
            "/fhir/$export", headers={"accept": "application/fhir+json", "prefer": "respond-async"}
        )
        assert kickoff.status_code == 202, kickoff.text
    # the endpoint's own writes (an AuditEvent per request) went to the primary, never to the read-only replica
    assert await primary.read(count_audit_events) > 0


async def test_serve_refuses_a_read_url_that_is_not_a_replica(urls: tuple[str, str], tmp_path: Path) -> None:
    """Pointing ``read_url`` at the primary itself is a configuration mistake, said in one sentence (exit 2)."""
    primary_url, _ = urls
    config = tmp_path / "bcconnect.toml"
    config.write_text(
        f'[store]\nurl = "{primary_url}"\nread_url = "{primary_url}"\n[auth]\nmode = "none"\n'
        f"[api]\nport = {no_auth_settings(tmp_path).api.port}\n",
        encoding="utf-8",
    )
    with anyio.fail_after(60):
        result = await anyio.run_process(
            [sys.executable, "-m", "bcconnect.cli.main", "--config", str(config), "serve", "--no-auth"], check=False
        )
    assert result.returncode == 2, result.stderr
    assert b"read_url is not a streaming replica" in result.stderr
    assert len(result.stderr.decode().strip().splitlines()) == 1
