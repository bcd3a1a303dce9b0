"""Triage answers over a synced world: the network worklist (with context), the waiting-list summary and mutual aid.

Starts the four sandboxes in this process, syncs them into a fresh store through the project's adapters and
mappings, then times each answer ``--repeat`` times through the view (as the FHIR operations and pages do) and
reports the median. Bounded: the world has ``--persons`` people and every call runs a fixed number of times.

    .venv/bin/python bench/triage_bench.py --persons 2000 --repeat 5 [--postgres-url URL]

``--region`` instead writes a region-sized waiting list straight into a fresh store with the documented
synthetic generator (``bench/triage_region_world.py``: ``--persons`` people, ``--open-referrals`` open
referrals), rebuilds the triage read model and times, in interleaved rounds, the ENT worklist's first page and
a deep page (with cross-site context), the waiting-list summary and mutual aid for a triager without the
sensitive grant (the screen applies), plus an incremental refresh after 200 changed referrals: median wall
and CPU time of each, with the load average.

    .venv/bin/python bench/triage_bench.py --region --persons 1300000 --open-referrals 100000 --repeat 5 \
        [--postgres-url URL] [--sqlite-path region.db] [--postgres-db triage_region]

``--sqlite-path`` / ``--postgres-db`` keep the built region; a later run with ``--reuse`` (same arguments) times
the answers on it again without building (minutes instead of the build's tens of minutes).

Results are printed and written to ``bench/results/triage.md`` (``triage_region.md`` for ``--region``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import orjson

from bcconnect.cli.demo_cmd import demo_adapters
from bcconnect.config import PathSettings, Settings
from bcconnect.ingest import sync_adapters
from bcconnect.store import open_store
from bcconnect.triage import Triage
from bcconnect.view import OPEN_ACCESS, AccessContext, View
from bcconnect_sandbox import SandboxSettings, running_sandboxes

ROOT = Path(__file__).resolve().parents[1]
#: resource types whose count per person states the density the figures were measured at
DENSITY_TYPES = ("ServiceRequest", "EpisodeOfCare", "Appointment", "Encounter", "Condition", "Observation")


def _fresh_postgres(url: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


def _named_postgres(url: str, name: str | None, reuse: bool) -> str:
    """A database for the region: ``name`` (made unless reused) or a fresh one."""
    if name is None:
        return _fresh_postgres(url)
    if not reuse:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


async def _time(repeat: int, call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


async def run(persons: int, repeat: int, store_url: str, work: Path, density: float) -> list[str]:
    world_settings = SandboxSettings(persons=persons, seed=7, density=density)
    as_of: date = world_settings.now.date()
    lines = []
    async with open_store(store_url) as store:
        async with running_sandboxes(world_settings, hl7_drop_dir=work / "drop") as world:
            await world.deliver_hl7()
            configs, environ = demo_adapters(world, adapters_dir=ROOT / "adapters", hl7_drop_dir=work / "drop")
            settings = Settings(root=work, paths=PathSettings(mappings_dir=str(ROOT / "mappings")))
            started = time.perf_counter()
            await sync_adapters(configs, settings=settings, store=store, environ=environ)
            sync_s = time.perf_counter() - started
        triage = Triage(View(store, default_count=100, max_count=1000))
        referrals = await triage.referrals(OPEN_ACCESS)
        backend = store_url.split(":", 1)[0]
        lines.append(f"- {backend}, {persons} persons (seed 7), {len(referrals)} referrals; sync {sync_s:.1f} s")
        counts = {
            t: (await triage.view.search(OPEN_ACCESS, t, [("_count", "0")])).page.total or 0 for t in DENSITY_TYPES
        }
        lines.append(
            "  - density per person: "
            + ", ".join(f"{t} {counts[t] / persons:.1f}" for t in DENSITY_TYPES)
            + f"; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        for network in ("ENT", "Orthopaedics"):
            ms, items = await _time(repeat, lambda n=network: triage.worklist(OPEN_ACCESS, n, as_of=as_of))
            bare, _ = await _time(
                repeat, lambda n=network: triage.worklist(OPEN_ACCESS, n, as_of=as_of, with_context=False)
            )
            lines.append(
                f"  - worklist {network}: {len(items)} awaiting triage: {ms:.0f} ms with context, {bare:.0f} ms without"
            )
        ms, summary = await _time(repeat, lambda: triage.summary(OPEN_ACCESS, as_of=as_of))
        lines.append(f"  - waiting-list summary: {sum(s.size for s in summary)} open pathways — {ms:.0f} ms")
        ms, offers = await _time(repeat, lambda: triage.mutual_aid(OPEN_ACCESS, as_of=as_of))
        lines.append(f"  - mutual aid: {len(offers)} PIDMAS-eligible — {ms:.0f} ms")
        lines.append(f"  - load average after timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return lines


#: the caller the region figures are for: a triager without the sensitive grant (labels, objectors screened)
TRIAGER = AccessContext(user="bench-triager", purpose="directcare", scopes=frozenset({"user/*.rs"}))


async def _timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = await call()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, result


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def run_region(
    store_url: str, persons: int, open_referrals: int, repeat: int, deep: int, reuse: bool = False
) -> list[str]:
    """Build the region, rebuild the read model, time the answers (see the module docstring); ``reuse``: the
    store already holds a region built by an earlier run, so only the answers are timed."""
    from triage_region_world import build

    as_of = date(2026, 12, 1)
    lines = []
    async with open_store(store_url) as store:
        triage = Triage(View(store, default_count=100, max_count=1000))
        backend = store_url.split(":", 1)[0]
        if reuse:
            await triage.model.refresh()
            held = await triage.model.counts()
            stored = await store.read(
                lambda tx: tx.query("SELECT res_type, COUNT(*) FROM resources GROUP BY res_type ORDER BY res_type")
            )
            lines.append(
                f"- {backend}: the region an earlier run built, reused ("
                + ", ".join(f"{t} {int(n):,}" for t, n in stored)
                + "); read model: "
                + ", ".join(f"{k} {v:,}" for k, v in held.items())
            )
        else:
            wall = time.perf_counter()
            written = await build(store, triage.config, persons=persons, open_referrals=open_referrals, as_of=as_of)
            built_s = time.perf_counter() - wall
            wall, cpu = time.perf_counter(), time.process_time()
            read = await triage.model.rebuild()
            rebuild_s, rebuild_cpu = time.perf_counter() - wall, time.process_time() - cpu
            held = await triage.model.counts()
            lines.append(
                f"- {backend}: region of {persons:,} persons ({written.population:,} as direct Patient rows), "
                f"{written.persons_with_data:,} with referrals written ({written.resources:,} resources: "
                + ", ".join(f"{t} {n:,}" for t, n in written.by_type.items())
                + f"; {written.objectors} objectors) in {built_s:.0f} s"
            )
            lines.append(
                f"  - read model rebuilt from {read:,} resources in {rebuild_s:.1f} s wall / {rebuild_cpu:.1f} s CPU: "
                + ", ".join(f"{k} {v:,}" for k, v in held.items())
                + f"; load average {_load()}"
            )
        _, deep_cursor = await triage.worklist_page(TRIAGER, "ENT", as_of=as_of, with_context=False, limit=deep)
        samples: dict[str, list[tuple[float, float]]] = {}
        facts: dict[str, str] = {}
        loads = []
        for _ in range(repeat):
            loads.append(_load())
            ms, cpu_ms, (page, _) = await _timed(lambda: triage.worklist_page(TRIAGER, "ENT", as_of=as_of, limit=50))
            samples.setdefault("ENT worklist, first page of 50 with context", []).append((ms, cpu_ms))
            facts["ENT worklist, first page of 50 with context"] = f"{len(page)} items"
            ms, cpu_ms, (page, _) = await _timed(
                lambda: triage.worklist_page(TRIAGER, "ENT", as_of=as_of, limit=50, after=deep_cursor)
            )
            samples.setdefault(f"ENT worklist, page after row {deep:,} with context", []).append((ms, cpu_ms))
            facts[f"ENT worklist, page after row {deep:,} with context"] = f"{len(page)} items"
            ms, cpu_ms, summary = await _timed(lambda: triage.summary(TRIAGER, as_of=as_of))
            samples.setdefault("waiting-list summary", []).append((ms, cpu_ms))
            facts["waiting-list summary"] = (
                f"{sum(s.size for s in summary):,} open pathways, {len(summary)} trust/TFC groups, "
                f"{sum(s.over[52] for s in summary):,} past 52 weeks, {sum(s.over[104] for s in summary):,} past 104"
            )
        for _ in range(max(1, repeat // 2)):
            ms, cpu_ms, offers = await _timed(lambda: triage.mutual_aid(TRIAGER, as_of=as_of))
            samples.setdefault("mutual aid (PIDMAS cohort with ages)", []).append((ms, cpu_ms))
            facts["mutual aid (PIDMAS cohort with ages)"] = f"{len(offers):,} eligible"
        changed = await _change_referrals(store, 200)
        ms, cpu_ms, applied = await _timed(triage.model.refresh)
        samples["incremental refresh after 200 changed referrals"] = [(ms, cpu_ms)]
        facts["incremental refresh after 200 changed referrals"] = f"{applied} applied ({changed} written)"
        lines.append(f"  - load average during timing: {', '.join(loads)}; after: {_load()}")
        for name, values in samples.items():
            wall_ms = statistics.median(v[0] for v in values)
            cpu_ms = statistics.median(v[1] for v in values)
            lines.append(
                f"  - {name}: {wall_ms:,.0f} ms wall, {cpu_ms:,.0f} ms CPU (median of {len(values)}; {facts[name]})"
            )
    return lines


async def _change_referrals(store: Any, n: int) -> int:
    """Re-write ``n`` referrals with a new review outcome (what a day's triage decisions look like)."""
    from bcconnect.store import ResourceWrite, iter_current, put_resources

    found = await store.read(lambda tx: iter_current(tx, "ServiceRequest", limit=n))
    writes = []
    for stored in found:
        body = orjson.loads(stored.body)
        body["note"] = [{"text": f"reviewed in the bench ({time.time_ns()})"}]  # new content on a reused store too
        writes.append(ResourceWrite("ServiceRequest", stored.id, orjson.dumps(body), "bench", stored.compartment))
    await store.write(lambda tx: put_resources(tx, writes))
    return len(writes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres-url", help="also run on a fresh database of this PostgreSQL server")
    parser.add_argument("--density", type=float, default=1.0, help="sandbox record density (default 1)")
    parser.add_argument("--region", action="store_true", help="a synthetic region written straight into the store")
    parser.add_argument("--open-referrals", type=int, default=100_000, help="--region: open referrals")
    parser.add_argument("--deep", type=int, default=2000, help="--region: the deep page starts after this row")
    parser.add_argument("--skip-sqlite", action="store_true", help="--region: PostgreSQL only")
    parser.add_argument("--results-suffix", default="", help="--region: results file name suffix")
    parser.add_argument("--sqlite-path", type=Path, help="--region: build the SQLite region in this file (kept)")
    parser.add_argument("--postgres-db", help="--region: build the PostgreSQL region in this database (kept)")
    parser.add_argument(
        "--reuse", action="store_true", help="--region: time the region already in --sqlite-path / --postgres-db"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bctriage-"))
    if args.region:
        header = [
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; in process "
            f"through the triage API (no HTTP); caller without the sensitive grant; synthetic region "
            f"(bench/triage_region_world.py).",
        ]
        lines: list[str] = []
        out = ROOT / "bench" / "results" / f"triage_region{args.results_suffix}.md"
        out.parent.mkdir(exist_ok=True)
        if args.reuse and not (args.sqlite_path or args.postgres_db):
            parser.error("--reuse needs --sqlite-path or --postgres-db (where an earlier run kept its region)")
        urls = [] if args.skip_sqlite else [f"sqlite:///{args.sqlite_path or work / 'region.db'}"]
        if args.postgres_url:
            urls.append(_named_postgres(args.postgres_url, args.postgres_db, args.reuse))
        for url in urls:
            # each backend's figures are printed and kept as soon as they are measured
            lines += anyio.run(run_region, url, args.persons, args.open_referrals, args.repeat, args.deep, args.reuse)
            text = "\n".join([*header, *lines]) + "\n"
            print(text, flush=True)
            out.write_text(text, encoding="utf-8")
        return
    header = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"median of {args.repeat} runs, in process through the view (no HTTP); sandbox density {args.density:g}.",
    ]
    lines = anyio.run(run, args.persons, args.repeat, f"sqlite:///{work / 'store.db'}", work, args.density)
    if args.postgres_url:
        pg_work = work / "pg"
        pg_work.mkdir()
        lines += anyio.run(run, args.persons, args.repeat, _fresh_postgres(args.postgres_url), pg_work, args.density)
    text = "\n".join([*header, *lines]) + "\n"
    print(text)
    out = ROOT / "bench" / "results" / "triage.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
