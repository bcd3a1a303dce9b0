"""Computing the three default cohorts over a synced world, and what that means for 1.3 million people.

Starts the four sandboxes in this process, syncs ``--persons`` people into a fresh store through the project's
adapters and mappings, then runs ``Cohorts(view).compute()`` (3+ long-term conditions, 3+ emergency admissions,
repeat A&E attenders) ``--repeat`` times and reports the median, split into reading through the view (golden
Patients, Conditions, Encounters) and evaluating the rules, with peak RSS. The 1.3M figure is a linear
extrapolation per person (every phase is one pass over each person's resources), stated as such.

    .venv/bin/python bench/cohort_compute.py --persons 3000 --repeat 3 [--postgres-url URL]

Results are printed and written to ``bench/results/cohorts.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import anyio

from bcconnect.cli.demo_cmd import demo_adapters
from bcconnect.cohorts import Cohorts, Evaluator
from bcconnect.config import PathSettings, Settings
from bcconnect.ingest import sync_adapters
from bcconnect.store import open_store, resource_types
from bcconnect.view import View
from bcconnect_sandbox import SandboxSettings, running_sandboxes

ROOT = Path(__file__).resolve().parents[1]
REGION = 1_300_000


def _fresh_postgres(url: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _run(persons: int, repeat: int, store_url: str, tmp: Path) -> dict[str, object]:
    world_settings = SandboxSettings(persons=persons, seed=21)
    async with open_store(store_url) as store:
        started = time.perf_counter()
        async with running_sandboxes(world_settings, hl7_drop_dir=tmp / "drop") as world:
            await world.deliver_hl7()
            configs, environ = demo_adapters(world, adapters_dir=ROOT / "adapters", hl7_drop_dir=tmp / "drop")
            settings = Settings(root=tmp, paths=PathSettings(mappings_dir=str(ROOT / "mappings")))
            reports = await sync_adapters(configs, settings=settings, store=store, environ=environ)
        sync_seconds = time.perf_counter() - started
        records = sum(r.fetched for r in reports)
        view = View(store)
        cohorts = Cohorts(view)
        as_of = world_settings.now.astimezone(UTC)
        totals, reads, evals = [], [], []
        runs = []
        read_counts: dict[str, int] = {}
        for _ in range(repeat):
            t0 = time.perf_counter()
            collector = await cohorts.collect()
            t1 = time.perf_counter()
            evaluator = Evaluator(as_of)
            for definition in cohorts.definitions.cohorts:
                sum(1 for facts in collector.persons.values() if evaluator.matches(definition.rule, facts))
            t2 = time.perf_counter()
            reads.append(t1 - t0)
            evals.append(t2 - t1)
            t3 = time.perf_counter()
            runs = await cohorts.compute(as_of=as_of)
            totals.append(time.perf_counter() - t3)
        for rtype in ("Patient", "Condition", "Encounter"):
            count = 0
            after = ""
            while batch := await view.export_batch(rtype, after_id=after):
                count += len(batch)
                after = batch[-1].id
            read_counts[rtype] = count
        types = await store.read(resource_types)
    total = statistics.median(totals)
    per_person = total / persons
    return {
        "persons": persons,
        "golden_persons": len(collector.persons),
        "records_synced": records,
        "sync_seconds": round(sync_seconds, 1),
        "resources_read": read_counts,
        "types_in_store": len(types),
        "compute_median_s": round(total, 2),
        "read_median_s": round(statistics.median(reads), 2),
        "evaluate_median_s": round(statistics.median(evals), 3),
        "per_person_ms": round(per_person * 1000, 3),
        "extrapolated_1_3M_s": round(per_person * REGION),
        "sizes": {r.group_id: r.member_count for r in runs},
        "peak_rss_mib": round(_rss_mib()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres-url", help="also run on a fresh database of this PostgreSQL server")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        results.append(("SQLite", anyio.run(_run, args.persons, args.repeat, f"sqlite:///{tmp / 'store.db'}", tmp)))
        if args.postgres_url:
            (tmp / "pg").mkdir()
            url = _fresh_postgres(args.postgres_url)
            results.append(("PostgreSQL", anyio.run(_run, args.persons, args.repeat, url, tmp / "pg")))
    lines = [
        "# Cohort computation (bench/cohort_compute.py)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.1f}; command: `.venv/bin/python bench/cohort_compute.py --persons {args.persons} "
        f"--repeat {args.repeat}{' --postgres-url …' if args.postgres_url else ''}`",
        "",
        "| backend | persons | resources read (Patient / Condition / Encounter) | compute (median) "
        "| reading through the view | evaluating 3 rules | per person | 1.3M, extrapolated | peak RSS | sizes |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for backend, r in results:
        counts = r["resources_read"]
        assert isinstance(counts, dict)
        lines.append(
            f"| {backend} | {r['persons']:,} "
            f"| {counts['Patient']:,} / {counts['Condition']:,} / {counts['Encounter']:,} "
            f"| {r['compute_median_s']} s | {r['read_median_s']} s | {r['evaluate_median_s']} s "
            f"| {r['per_person_ms']} ms "
            f"| {r['extrapolated_1_3M_s']:,} s | {r['peak_rss_mib']} MiB | {r['sizes']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    for _, r in results:
        print(r)
    out = ROOT / "bench" / "results" / "cohorts.md"
    out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
