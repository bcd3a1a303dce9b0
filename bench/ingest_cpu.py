"""The engine's ingest CPU per record, end to end, without HTTP: map, validate, link, index, commit.

    .venv/bin/python bench/ingest_cpu.py --persons 100 [--density 1] [--url sqlite:///…|postgresql://…]
        [--rounds 1] [--concurrent] [--profile out.prof] [--top 30]

The sandbox's persons (``SandboxSettings.density``, default 1) are rendered in their trusts' own wire formats
(RL4 and RXK FHIR, RNA's change feed, RBK's HL7 v2 messages, exactly as ``bench/region_scale.py`` does) *before*
the clock starts; then each adapter's records go through :func:`bcconnect.ingest.process_page` in pages of 500,
one adapter after the other, into a fresh store. Measured: this process's CPU time (user + system,
``time.process_time`` — every thread of the process) and the wall time of the ingest alone, so the figure is
"records per CPU-second of the engine". ``--concurrent`` runs the four adapters at once (each its own task, as
``bcconnect sync`` does); on PostgreSQL the run then also samples ``pg_stat_activity`` every 10 ms and reports how
often a writer was waiting on a lock, and on which: the store's clock row or identity linking's blocking-key
advisory locks (both held to commit). The HTTP fetch
and page parsing of a real sync are left out on purpose (``bench/ingest_sync.py`` measures that path, with the
sandboxes competing for the same cores).

``--profile`` runs one round under cProfile and prints the top entries by own time and by cumulative time.
cProfile traces one thread only, so in that round the work the engine hands to worker threads (mapping, the
store's transactions) runs inline on the event loop's thread instead: the same code, one thread.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from region_scale import TRUST_OF_ADAPTER, fresh_schema, person_records, rss_mib

from bcconnect.adapters import Page, RawRecord
from bcconnect.config import AdapterConfig, load_adapters
from bcconnect.ingest import process_page
from bcconnect.mapping import MappingSet, load_mapping_set
from bcconnect.store import open_store
from bcconnect_sandbox.settings import SandboxSettings
from bcconnect_sandbox.sources import IdCodec

ROOT = Path(__file__).resolve().parents[1]
PAGE = 500


def build_records(persons: int, density: float, seed: int) -> dict[str, list[RawRecord]]:
    """Every trust's raw records for persons 0…persons-1, keyed by adapter name."""
    settings = SandboxSettings(persons=max(persons, 10), seed=seed, density=density)
    codecs = {t: IdCodec(settings.seed, t) for t in TRUST_OF_ADAPTER.values()}
    by_trust: dict[str, list[RawRecord]] = {t: [] for t in TRUST_OF_ADAPTER.values()}
    for index in range(persons):
        for trust, records in person_records(settings, index, codecs).items():
            by_trust[trust] += records
    return {adapter: by_trust[trust] for adapter, trust in TRUST_OF_ADAPTER.items()}


class LockSampler:
    """Polls ``pg_stat_activity`` of the store's database every 10 ms on its own connection: how many backends
    are running a statement, and how many of those wait on a heavyweight lock (a row or transaction lock)."""

    def __init__(self, url: str) -> None:
        #: the store's connections carry this name, so other sessions on the server are not counted
        self.application = f"ingest_cpu_{os.getpid()}"
        self.url = f"{url}&application_name={self.application}"
        self._url = url
        self._stop = threading.Event()
        self.samples = 0
        self.active = 0
        self.waiting = 0
        self.any_waiting = 0
        self.on_clock = 0
        self.advisory = 0
        #: each store backend's CPU seconds (user + system) as last read from /proc (the server runs here)
        self._backend_cpu: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._stop.wait(0.01):
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE state = 'active'),"
                    " count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock'),"
                    " count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock'"
                    " AND query ILIKE '%%store_clock%%'),"
                    " count(*) FILTER (WHERE state = 'active' AND wait_event = 'advisory'),"
                    " array_agg(pid)"
                    " FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
                    (self.application,),
                ).fetchone()
                if row is None:
                    continue
                active, waiting, on_clock, advisory = (int(v) for v in row[:4])
                for pid in row[4] or ():
                    self._backend_cpu[pid] = _cpu_seconds(pid) or self._backend_cpu.get(pid, 0.0)
                self.samples += 1
                self.on_clock += on_clock
                self.advisory += advisory
                self.active += active
                self.waiting += waiting
                self.any_waiting += waiting > 0

    @property
    def database_cpu_s(self) -> float:
        """CPU seconds the store's backends used (for a server on this machine, readable by this user)."""
        return sum(self._backend_cpu.values())

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        return (
            f"{self.samples} samples: a writer waited on a lock in {100 * self.any_waiting / self.samples:.0f}%;"
            f" mean {self.active / self.samples:.2f} statements running, {self.waiting / self.samples:.2f} of them"
            f" waiting on a lock ({self.on_clock / self.samples:.2f} on the store_clock row,"
            f" {self.advisory / self.samples:.2f} on identity linking's advisory locks);"
            f" database backends {self.database_cpu_s:.2f} CPU-s"
        )


def _cpu_seconds(pid: int) -> float | None:
    """A process's user + system CPU seconds from ``/proc/<pid>/stat`` (None when it is gone or not ours)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def ingest(
    url: str,
    records: dict[str, list[RawRecord]],
    adapters: list[tuple[AdapterConfig, MappingSet]],
    concurrent: bool = False,
) -> dict[str, Any]:
    """Ingest every adapter's records into the store at ``url``; CPU and wall seconds of the ingest alone."""
    totals = {"records": 0, "resources": 0}
    async with open_store(url) as store:

        async def one_adapter(config: AdapterConfig, mapping_set: MappingSet) -> None:
            mine = records[config.name]
            for start in range(0, len(mine), PAGE):
                page = Page(records=tuple(mine[start : start + PAGE]), rejects=(), cursor=f"{start + PAGE}")
                counts = await process_page(page, config=config, store=store, mapping_set=mapping_set)
                totals["records"] += counts.fetched
                totals["resources"] += counts.resources_written

        cpu0, wall0 = time.process_time(), time.perf_counter()
        if concurrent:
            async with anyio.create_task_group() as tg:
                for config, mapping_set in adapters:
                    tg.start_soon(one_adapter, config, mapping_set)
        else:
            for config, mapping_set in adapters:
                await one_adapter(config, mapping_set)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {**totals, "cpu_s": cpu, "wall_s": wall}


async def _inline(func: Any, *args: Any, **_: Any) -> Any:
    """``anyio.to_thread.run_sync`` without the thread (so cProfile, which traces one thread, sees the work)."""
    return func(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=100)
    parser.add_argument("--density", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="fresh stores ingested one after the other")
    parser.add_argument("--url", default="", help="store URL (default: a fresh SQLite file per round)")
    parser.add_argument("--concurrent", action="store_true", help="the four adapters at once, as a sync runs them")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of one round here")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    adapters = [
        (c, load_mapping_set(ROOT / "mappings" / c.mapping_set))
        for c in load_adapters(ROOT / "adapters")
        if c.name in TRUST_OF_ADAPTER
    ]
    started = time.perf_counter()
    records = build_records(args.persons, args.density, args.seed)
    total = sum(len(r) for r in records.values())
    print(
        f"{total:,} raw records for {args.persons} persons at density {args.density:g}"
        f" (built in {time.perf_counter() - started:.1f} s; not measured)",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="ingest-cpu-") as tmp:
        for round_no in range(args.rounds):
            schema = None
            if args.url.startswith("postgres"):
                url, schema = fresh_schema(args.url)
            else:
                url = args.url or f"sqlite:///{tmp}/round{round_no}.db"
            profiler = cProfile.Profile() if args.profile and round_no == 0 else None
            if profiler:
                threaded = anyio.to_thread.run_sync
                anyio.to_thread.run_sync = _inline  # type: ignore[assignment]
                profiler.enable()
            sampler = LockSampler(url) if args.concurrent and schema is not None else None
            if sampler:
                with sampler:
                    result = anyio.run(ingest, sampler.url, records, adapters, True)
            else:
                result = anyio.run(ingest, url, records, adapters, args.concurrent)
            if profiler:
                profiler.disable()
                anyio.to_thread.run_sync = threaded
                profiler.dump_stats(args.profile)
                for key in ("tottime", "cumulative"):
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(args.top)
                    print(out.getvalue())
            if schema is not None:  # the round's schema is dropped, as the region bench drops its own
                with psycopg.connect(args.url, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
            results.append(result)
            print(
                f"round {round_no + 1}: {result['records']:,} records ({result['resources']:,} resources) in"
                f" {result['cpu_s']:.2f} CPU-s / {result['wall_s']:.2f} s wall ="
                f" {result['records'] / result['cpu_s']:,.0f} records per CPU-second,"
                f" {result['records'] / result['wall_s']:,.0f}/s wall; RSS {rss_mib():.0f} MiB;"
                f" load {os.getloadavg()[0]:.1f}" + (f"; {sampler.summary()}" if sampler else ""),
                flush=True,
            )
    per_cpu = statistics.median(r["records"] / r["cpu_s"] for r in results)
    print(f"median: {per_cpu:,.0f} records per CPU-second over {len(results)} round(s)")


if __name__ == "__main__":
    main()
