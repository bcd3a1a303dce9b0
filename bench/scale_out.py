"""Scale-out on PostgreSQL: ingest with 1 and 2 leased workers, the API with 1 and 2 processes.

    .venv/bin/python bench/scale_out.py --postgres-url postgresql://… [--persons 1000] [--seconds 10]
        [--rounds 3] [--api-only]

Ingest: two loopback sandboxes (RL4 and RNA, in this process) and N ``bcconnect run`` workers (child processes) on a
fresh PostgreSQL schema; the time from start until every adapter has finished one successful sync. API: the
store the ingest left, served by ``bcconnect serve --no-auth --workers N`` and loaded for ``--seconds`` by wrk
(one thread, 16 connections) cycling a read by id and an Observation search by subject (every request audited),
in ``--rounds`` interleaved rounds (1 process, 2 processes, then 2, 1, …); per run: req/s, median latency, CPU per
request of the API's process tree and of the PostgreSQL cluster (user + system from /proc), transactions committed
per request (``pg_stat_database``, reads included), the load average;
the table gives the medians over rounds. ``--api-only`` ingests once with one worker and skips the ingest
comparison. Prints Markdown tables; bounded and self-stopping.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import anyio
import httpx
import psycopg

from bcconnect.cli.demo_cmd import demo_adapters, write_demo_config
from bcconnect_sandbox import SandboxSettings, running_sandboxes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_scenarios import WRK_SCRIPT
from proc_cpu import cpu_seconds, free_port, process_tree

ADAPTERS = Path(__file__).resolve().parents[1] / "adapters"


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


def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine (its backends are its children)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_setting('data_directory')").fetchone()
    try:
        return int((Path(str(row[0])) / "postmaster.pid").read_text().split()[0]) if row else None
    except (OSError, ValueError, IndexError):
        return None


def commits(url: str) -> int:
    """Transactions committed in the database so far (the statistics collector's count, all sessions)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Sample:
    req_s: float
    p50_ms: float
    api_cpu_ms: float
    db_cpu_ms: float
    load: float
    #: transactions committed in the database per request (reads and writes: the audit batches are the writes)
    commits_per_request: float = 0.0


def api(url: str, workers: int, seconds: float, folder: Path) -> Sample:
    config = folder / f"api-{workers}.toml"
    config.write_text('[logging]\nlevel = "warning"\n', encoding="utf-8")
    port = free_port()
    env = {**os.environ, "BCCONNECT_STORE_URL": url}
    proc = subprocess.Popen([sys.executable, "-m", "bcconnect.cli.main", "--config", str(config), "serve", "--no-auth",
                             "--port", str(port), "--workers", str(workers)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: install the Debian package 'wrk'")
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        ids = [e["resource"]["id"] for e in httpx.get(f"{base}/fhir/Patient?_count=50", timeout=30).json()["entry"]]
        paths = [f"/fhir/Patient/{pid}" if i % 2 else f"/fhir/Observation?subject=Patient/{pid}&_count=20"
                 for i, pid in enumerate(ids * 2)]  # fmt: skip
        listing = folder / "paths.txt"
        listing.write_text("".join(f"{p}\n" for p in paths), encoding="utf-8")
        script = folder / "scale.lua"
        script.write_text(WRK_SCRIPT, encoding="utf-8")
        for path in paths[:4]:  # warm every process's caches a little, and fail early on a wrong answer
            assert httpx.get(base + path, timeout=30).status_code == 200
        database = postmaster_pid(url)
        commits_before = commits(url)
        api_pids, db_pids = process_tree(proc.pid), process_tree(database) if database else []
        load_before = os.getloadavg()[0]
        api_cpu, db_cpu = cpu_seconds(api_pids), cpu_seconds(db_pids)
        done = subprocess.run([wrk, "-t1", "-c16", f"-d{seconds:g}s", "--timeout", "30s", "-s", str(script), base],
                              env={**os.environ, "BENCH_PATHS": str(listing)}, capture_output=True, text=True,
                              timeout=seconds + 60, check=False)  # fmt: skip
        api_used = cpu_seconds(process_tree(proc.pid)) - api_cpu
        committed = commits(url) - commits_before
        db_used = cpu_seconds(process_tree(database) if database else []) - db_cpu
        load = (load_before + os.getloadavg()[0]) / 2
        line = next((x for x in done.stdout.splitlines() if x.startswith("{")), None)
        if done.returncode != 0 or line is None:
            raise SystemExit(f"wrk failed: {done.stdout[-500:]} {done.stderr[-500:]}")
        result = json.loads(line)
        if result["non2xx"] or result["socket_errors"]:
            raise SystemExit(f"{result['non2xx']} non-2xx answers, {result['socket_errors']} socket errors")
        requests = max(1, int(result["requests"]))
        return Sample(requests / (result["duration_us"] / 1e6), result["p50_us"] / 1000,
                      api_used / requests * 1000, max(0.0, db_used) / requests * 1000, load,
                      committed / requests)  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--persons", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved API rounds (default 3)")
    parser.add_argument("--density", type=float, default=1.0, help="sandbox record density (default 1)")
    parser.add_argument("--api-only", action="store_true", help="ingest once (one worker); compare the API only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(
            f"sandboxes: RL4 (FHIR) and RNA (JSON feed), {args.persons} persons at density {args.density:g};"
            f" PostgreSQL; {os.cpu_count()} CPUs\n"
        )
        one, url = anyio.run(ingest, args.postgres_url, args.persons, 1, folder, args.density)
        extra: list[str] = []
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT SUM(fetched) FROM ingest_runs WHERE ok = 1").fetchone()
        records = int(row[0]) if row and row[0] else 0
        if not args.api_only:
            two, second = anyio.run(ingest, args.postgres_url, args.persons, 2, folder, args.density)
            extra.append(second)
            print("| measure | 1 process | 2 processes |\n| --- | ---: | ---: |")
            print(f"| ingest: {records:,} records, seconds until every adapter synced | {one:.1f} | {two:.1f} |")
            print(f"| ingest: records/s | {records / one:,.0f} | {records / two:,.0f} |\n")
        samples: dict[int, list[Sample]] = {1: [], 2: []}
        print(
            "| round | API processes | req/s | median ms | API CPU ms/req | PostgreSQL CPU ms/req | transactions/req"
            " | load avg |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for n in range(args.rounds):
            for workers in (1, 2) if n % 2 == 0 else (2, 1):
                got = api(url, workers, args.seconds, folder)
                samples[workers].append(got)
                print(f"| {n + 1} | {workers} | {got.req_s:,.0f} | {got.p50_ms:.1f} | {got.api_cpu_ms:.2f}"
                      f" | {got.db_cpu_ms:.2f} | {got.commits_per_request:.2f} | {got.load:.1f} |",
                      flush=True)  # fmt: skip
        print(
            f"\nmedians over {args.rounds} rounds ({records:,} records ingested, wrk -t1 -c16 -d{args.seconds:g}s):\n"
        )
        print(
            "| API processes | req/s | median ms | API CPU ms/req | PostgreSQL CPU ms/req | transactions/req"
            " | load avg |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for workers, got_all in samples.items():
            med = {k: statistics.median(getattr(s, k) for s in got_all) for k in Sample.__dataclass_fields__}
            print(f"| {workers} | {med['req_s']:,.0f} | {med['p50_ms']:.1f} | {med['api_cpu_ms']:.2f}"
                  f" | {med['db_cpu_ms']:.2f} | {med['commits_per_request']:.2f} | {med['load']:.1f} |")  # fmt: skip
        for schema_url in (url, *extra):
            drop_schema(args.postgres_url, schema_url)


if __name__ == "__main__":
    main()
