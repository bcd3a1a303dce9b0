"""The audit trail at volume: bytes per event and append throughput, one transaction per event vs group commit.

    .venv/bin/python bench/audit_volume.py [--events 5000] [--concurrency 32] [--postgres-url postgresql://…]

Appends ``--events`` realistic AuditEvents (reads, identifier searches and ``_revinclude`` searches of random
persons, 1–3 patients each, a request id each, as the gate writes them) from ``--concurrency`` concurrent
requests into a fresh store, twice: once one write transaction per event (the old path), once through
:class:`AuditWriter` (group commit). Reports events/s, transactions used, and the bytes the audit tables take
per event (SQLite: ``dbstat`` pages of the audit tables and their indexes; PostgreSQL: ``pg_total_relation_size``),
with the hourly growth at 500 requests/s. Bounded; loopback only.
"""

from __future__ import annotations

import argparse
import random
import secrets
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import psycopg

from bcconnect.security import AuditRecord, append_audit_event, build_audit_event, verify_audit_chain
from bcconnect.security._audit_writer import AuditWriter
from bcconnect.store import Store, Tx, open_store

AUDIT_TABLES = ("audit_events", "audit_event_patients", "audit_chains")


def record(rng: random.Random) -> AuditRecord:
    person = str(uuid.UUID(int=rng.getrandbits(128)))
    kind = rng.random()
    if kind < 0.5:
        path, query, interaction, rtype = f"/fhir/Patient/{person}", "", "read", "Patient"
    elif kind < 0.8:
        path, interaction, rtype = "/fhir/Observation", "search-type", "Observation"
        query = f"patient={person}&_count=50"
    else:
        path, interaction, rtype = "/fhir/Patient", "search-type", "Patient"
        query = f"_id={person}" + "".join(
            f"&_revinclude={t}%3Asubject" for t in ("Observation", "Encounter", "Condition")
        )
    patients = tuple(
        sorted(
            {f"Patient/{person}"} | {f"Patient/{uuid.UUID(int=rng.getrandbits(128))}" for _ in range(rng.randrange(3))}
        )
    )
    return AuditRecord(
        recorded=datetime.now(UTC), interaction=interaction, status=200, method="GET", path=path, query=query,
        resource_type=rtype, user=f"{rng.randrange(10**11, 10**12)}", role="R8000", organisation="RL4",
        purpose="directcare", client_id="epr-rl4", remote_address="10.1.2.3", patients=patients,
        request_id=secrets.token_hex(16),
    )  # fmt: skip


def event_of(rng: random.Random) -> tuple[dict[str, Any], tuple[str, ...]]:
    rec = record(rng)
    return build_audit_event(rec, event_id=str(uuid.uuid4())), rec.patients


async def run(store: Store, events: int, concurrency: int, grouped: bool) -> tuple[float, int]:
    rng = random.Random(5)
    made = [event_of(rng) for _ in range(events)]
    writer = AuditWriter(store)
    transactions = 0
    per_worker = events // concurrency

    async def worker(w: int) -> None:
        nonlocal transactions
        for event, patients in made[w * per_worker : (w + 1) * per_worker]:
            if grouped:
                await writer.append(lambda tx, e=event, p=patients: (e, p))
            else:
                await store.write(lambda tx, e=event, p=patients: append_audit_event(tx, e, patients=p))
                transactions += 1

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for w in range(concurrency):
            group.start_soon(worker, w)
    elapsed = time.perf_counter() - started
    return per_worker * concurrency / elapsed, writer.batches if grouped else transactions


def sqlite_bytes(tx: Tx) -> int:
    rows = tx.query(
        "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('audit_events', 'audit_event_patients', 'audit_chains')"
        " OR name LIKE 'sqlite_autoindex_audit%' OR name LIKE 'audit_events_%'"
    )
    return int(rows[0][0] or 0)


def postgres_bytes(tx: Tx) -> int:
    # the trail is partitioned by month: every partition (and its indexes) of both tables, and the chains
    row = tx.query_one(
        "SELECT SUM(pg_total_relation_size(t.relid)) FROM ("
        " SELECT relid FROM pg_partition_tree('audit_events') UNION ALL"
        " SELECT relid FROM pg_partition_tree('audit_event_patients') UNION ALL"
        " SELECT to_regclass('audit_chains')) t"
    )
    return int(row[0] or 0) if row else 0


async def measure(url: str, events: int, concurrency: int, grouped: bool) -> str:
    async with open_store(url) as store:
        rate, transactions = await run(store, events, concurrency, grouped)
        stored = await store.read(lambda tx: tx.query_one("SELECT COUNT(*) FROM audit_events"))
        count = int(stored[0]) if stored else 0
        size = await store.read(sqlite_bytes if store.dialect == "sqlite" else postgres_bytes)
        report = await store.read(verify_audit_chain)
        if not report.ok or report.events != count:
            raise SystemExit(f"the trail does not verify: {report}")
    per_event = size / max(1, count)
    hourly = per_event * 500 * 3600 / 2**30
    how = "group commit" if grouped else "a transaction per event"
    return f"| {how} | {rate:,.0f} | {transactions:,} | {per_event:,.0f} | {hourly:.2f} GiB |"


def fresh_schema(base: str) -> str:
    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for dialect in ("sqlite", "postgresql") if args.postgres_url else ("sqlite",):
            print(f"\n{dialect}: {args.events:,} events from {args.concurrency} concurrent requests\n")
            print(
                "| append | events/s | transactions | bytes/event (tables + indexes) | growth at 500 req/s, per hour |"
            )
            print("| --- | ---: | ---: | ---: | ---: |")
            for grouped in (False, True):
                if dialect == "sqlite":
                    url = f"sqlite:///{Path(tmp) / f'audit-{grouped}.db'}"
                else:
                    url = fresh_schema(args.postgres_url)
                print(anyio.run(measure, url, args.events, args.concurrency, grouped), flush=True)


if __name__ == "__main__":
    main()
