"""Scale-out on PostgreSQL: ingest with 1 and 2 leased workers, the API with 1 and 2 processes.

    .venv/bin/python bench/scale_out.py --postgres-url postgresql://… [--persons 1000] [--seconds 10]

Ingest: two loopback sandboxes (RL4 and RNA, in this process) and N ``bcconnect run`` workers (child processes) on a
fresh PostgreSQL schema; the time from start until every adapter has finished one successful sync. API: the
store the ingest left, served by ``bcconnect serve --no-auth --workers N`` and loaded for ``--seconds`` by 16
concurrent clients (a read by id and a search by identifier, alternating; every request is audited). Prints a
Markdown table; bounded and self-stopping.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import anyio
import httpx
import psycopg

from bcconnect.cli.demo_cmd import demo_adapters, write_demo_config
from bcconnect_sandbox import SandboxSettings, running_sandboxes

ADAPTERS = Path(__file__).resolve().parents[1] / "adapters"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_schema(base: str) -> str:
    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def drop_schema(base: str, url: str) -> None:
    schema = url.rsplit("search_path%3D", 1)[-1]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def finished_adapters(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT COUNT(DISTINCT adapter) FROM ingest_runs WHERE ok = 1 AND finished_at IS NOT NULL"
        ).fetchone()
    return int(row[0]) if row else 0


async def ingest(base_url: str, persons: int, workers: int, folder: Path, density: float) -> tuple[float, str]:
    url = fresh_schema(base_url)
    drop = folder / "drop"
    async with running_sandboxes(
        SandboxSettings(persons=persons, seed=3, trusts=("RL4", "RNA"), density=density), hl7_drop_dir=drop
    ) as world:
        configs, environ = demo_adapters(world, adapters_dir=ADAPTERS, hl7_drop_dir=drop)
        config = write_demo_config(folder / f"deploy-{workers}", port=free_port(), configs=configs, environ=environ)
        env = {**os.environ, **environ, "BCCONNECT_STORE_URL": url, "BCCONNECT_INGEST_LEASE_SECONDS": "5",
               "BCCONNECT_LOGGING_LEVEL": "warning"}  # fmt: skip
        upgrade = [sys.executable, "-m", "bcconnect.cli.main", "--config", str(config), "db", "upgrade"]
        # set-up before the clock starts: a second at most
        subprocess.run(upgrade, env=env, check=True, capture_output=True)  # noqa: ASYNC221
        started = time.perf_counter()
        procs = [
            subprocess.Popen(  # noqa: ASYNC220 - long-lived workers, watched below
                [sys.executable, "-m", "bcconnect.cli.main", "--config", str(config), "run"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        try:
            while await anyio.to_thread.run_sync(finished_adapters, url) < len(configs):
                if time.perf_counter() - started > 900:
                    raise SystemExit("ingest did not finish within 15 minutes")
                await anyio.sleep(0.25)
            elapsed = time.perf_counter() - started
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=30)
    return elapsed, url


def api(url: str, workers: int, seconds: float, folder: Path) -> tuple[float, float]:
    config = folder / f"api-{workers}.toml"
    config.write_text('[logging]\nlevel = "warning"\n', encoding="utf-8")
    port = free_port()
    env = {**os.environ, "BCCONNECT_STORE_URL": url}
    proc = subprocess.Popen([sys.executable, "-m", "bcconnect.cli.main", "--config", str(config), "serve", "--no-auth",
                             "--port", str(port), "--workers", str(workers)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        ids = [e["resource"]["id"] for e in httpx.get(f"{base}/fhir/Patient?_count=50", timeout=30).json()["entry"]]
        return anyio.run(load, base, ids, seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


async def load(base: str, ids: list[str], seconds: float) -> tuple[float, float]:
    done = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            i = n
            while time.perf_counter() < deadline:
                pid = ids[i % len(ids)]
                path = f"/fhir/Patient/{pid}" if i % 2 else f"/fhir/Observation?subject=Patient/{pid}&_count=20"
                t0 = time.perf_counter()
                response = await http.get(path)
                latencies.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text[:200]
                done += 1
                i += 7

    async with anyio.create_task_group() as group:
        for n in range(16):
            group.start_soon(client, n)
    latencies.sort()
    return done / seconds, latencies[len(latencies) // 2] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--persons", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--density", type=float, default=1.0, help="sandbox record density (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(
            f"sandboxes: RL4 (FHIR) and RNA (JSON feed), {args.persons} persons at density {args.density:g};"
            f" PostgreSQL; {os.cpu_count()} CPUs\n"
        )
        print("| measure | 1 process | 2 processes |\n| --- | ---: | ---: |")
        one, url = anyio.run(ingest, args.postgres_url, args.persons, 1, folder, args.density)
        two, second = anyio.run(ingest, args.postgres_url, args.persons, 2, folder, args.density)
        extra = [second]
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT SUM(fetched) FROM ingest_runs WHERE ok = 1").fetchone()
        records = int(row[0]) if row and row[0] else 0
        print(f"| ingest: {records:,} records, seconds until every adapter synced | {one:.1f} | {two:.1f} |")
        print(f"| ingest: records/s | {records / one:,.0f} | {records / two:,.0f} |")
        rate1, p50_1 = api(url, 1, args.seconds, folder)
        rate2, p50_2 = api(url, 2, args.seconds, folder)
        print(f"| API: requests/s (16 clients, read + search, audited) | {rate1:,.0f} | {rate2:,.0f} |")
        print(f"| API: median latency ms | {p50_1:.1f} | {p50_2:.1f} |")
        for schema_url in (url, *extra):
            drop_schema(args.postgres_url, schema_url)


if __name__ == "__main__":
    main()
