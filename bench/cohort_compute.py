"""Computing the three default cohorts over a synced world, and what that means for 1.3 million people.

Starts the four sandboxes in this process, syncs ``--persons`` people into a fresh store through the project's
adapters and mappings, then runs ``Cohorts(view).compute()`` (3+ long-term conditions, 3+ emergency admissions,
repeat A&E attenders) ``--repeat`` times and reports the median, split into reading through the view (golden
Patients, Conditions, Encounters) and evaluating the rules, with peak RSS. The 1.3M figure is a linear
extrapolation per person (every phase is one pass over each person's resources), stated as such.

    .venv/bin/python bench/cohort_compute.py --persons 3000 --repeat 3 [--postgres-url URL]

Results are printed and written to ``bench/results/cohorts.md``.

``--region`` measures the target itself — the three default cohorts over a 1.3M-person region — without syncing
1.3M people through the sandboxes (hours on this machine): a documented synthetic generator (:func:`region_rows`,
seeded) writes the facts read model's tables directly, with the region's prevalence (about 8.5% with three or more
listed long-term conditions, about 1% with three or more emergency admissions in 12 months, about 0.9% with five or
more A&E attendances — printed from the generated rows), 1–3 trust records per person, a quarter of conditions and
a sixth of stays sent by two trusts. It then times, in interleaved rounds, a full computation (``Cohorts.compute``:
the feed has nothing new, every definition evaluated over all persons) and an incremental one (``--changes``
new Encounters and Conditions for existing people written into the store, then ``Cohorts.compute``, which reads
them through the view's change feed into the model first). Medians of wall and CPU time (this process; and the
PostgreSQL server's backends, from /proc, when the server runs on this machine), peak RSS, load average.

    .venv/bin/python bench/cohort_compute.py --region [--persons 1300000] [--repeat 3] [--postgres-url URL]

Region results go to ``bench/results/cohorts_region.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import resource
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import orjson
from bulk_synthetic import insert_rows

from bcconnect.cli.demo_cmd import demo_adapters
from bcconnect.cohorts import Cohorts, Evaluator, load_definitions, load_places
from bcconnect.cohorts._extract import ATTENDANCES, STAYS
from bcconnect.cohorts._facts import to_us
from bcconnect.config import PathSettings, Settings
from bcconnect.fhir.constants import ADMISSION_METHOD_EXTENSION
from bcconnect.fhir.nhs_number import check_digit
from bcconnect.ingest import sync_adapters
from bcconnect.store import ResourceWrite, Store, Tx, open_store, put_resources, resource_types
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


# --- the region: 1.3M persons' facts from a synthetic generator -----------------------------------------------

TRUSTS = ("rl4", "rna", "rbk", "rxk")
NON_LTC_CODES = ("271737000", "68566005", "22298006x", "386661006", "25064002", "36971009")
AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
_CHUNK = 50_000


def nhs_number(i: int) -> str:
    """The ``i``-th synthetic NHS number: nine digits from 900000000 on (the test range) and a valid check digit
    (numbers whose check digit would be 10 are skipped by moving on, so ``i`` maps to one number only)."""
    base = 900_000_000 + i * 2
    while (digit := check_digit(str(base))) is None:
        base += 1
    return f"{base}{digit}"


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def region_rows(persons: int, seed: int) -> Iterator[tuple[str, tuple[object, ...]]]:
    """The facts of ``persons`` synthetic people, as ``(table, row)``.

    Per person: an age from a UK-like pyramid; 1–3 trust records (55/35/10%); a postcode district of the Black
    Country (borough from the packaged table) and one of 300 practices; listed long-term conditions drawn from a
    Poisson whose mean rises with age (0.09 + 3.1·(age/100)^2.3, capped at 13), each recorded by one trust or,
    a quarter of the time, by two (a second Condition row); about one acute, unlisted condition; emergency stays
    over the last 36 months at a yearly rate of 0.04, +1.2 with three or more conditions, +0.6 with five or more,
    +0.1 over 75 (each 1–10 days, a sixth sent by two trusts a few hours apart); A&E attendances at 0.22 a year
    plus 0.08 per condition, or 9 a year for the 0.9% who are frequent attenders.
    """
    rng = random.Random(seed)
    places = load_places()
    districts = sorted(places)
    definitions = load_definitions()
    sets = {name: sorted(codes) for name, codes in sorted(definitions.condition_sets.items())}
    names = list(sets)
    now_us = to_us(AS_OF)
    day = 86_400 * 1_000_000
    span = 3 * 365 * day
    bands = (5, 15, 25, 35, 45, 55, 65, 75, 85, 95)
    weights = (12, 12, 13, 13, 13, 13, 11, 8, 4, 1)
    for i in range(persons):
        person = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        age = rng.choices(bands, weights=weights)[0] + rng.random() * 10
        birth = (AS_OF.date() - timedelta(days=int(age * 365.25))).isoformat()
        district = rng.choice(districts)
        sources = [f"{TRUSTS[k]}-{i}" for k in rng.sample(range(4), rng.choices((1, 2, 3), weights=(55, 35, 10))[0])]
        yield (
            "person",
            (person, nhs_number(i), birth, district, places[district], f"M{87000 + rng.randrange(300)}"),
        )
        yield "patient", (person, person)
        for source in sources:
            yield "patient", (source, person)
        count = min(_poisson(rng, 0.09 + 3.1 * (max(age, 0) / 100) ** 2.3), len(names))
        for k, name in enumerate(rng.sample(names, count)):
            code = rng.choice(sets[name])
            for j in range(1 if rng.random() < 0.75 else 2):
                yield "condition", (f"c-{i}-{k}-{j}", code, rng.choice(sources))
        for k in range(_poisson(rng, 0.9)):
            yield "condition", (f"c-{i}-a{k}", rng.choice(NON_LTC_CODES), rng.choice(sources))
        yearly = 0.04 + 1.2 * (count >= 3) + 0.6 * (count >= 5) + 0.1 * (age > 75)
        for k in range(_poisson(rng, yearly * 3)):
            start = now_us - rng.randrange(span)
            end = start + rng.randint(1, 10) * day
            yield "encounter", (f"s-{i}-{k}", rng.choice(sources), STAYS, start, end, "rl4")
            if rng.random() < 1 / 6:
                shift = rng.randint(1, 6) * 3_600_000_000
                yield "encounter", (f"s-{i}-{k}b", rng.choice(sources), STAYS, start + shift, end + shift, "rna")
        frequent = rng.random() < 0.009
        for k in range(_poisson(rng, (9.0 if frequent else 0.22 + 0.08 * count) * 3)):
            start = now_us - rng.randrange(span)
            yield "encounter", (f"a-{i}-{k}", rng.choice(sources), ATTENDANCES, start, start + 4 * 3_600_000_000, "rxk")


_REGION_INSERTS = {
    "person": ("cohort_fact_person", ("person_id", "nhs_number", "birth_date", "district", "borough", "practice")),
    "patient": ("cohort_fact_patient", ("patient_id", "person_id")),
    "condition": ("cohort_fact_condition", ("res_id", "code", "patient_id")),
    "encounter": ("cohort_fact_encounter", ("res_id", "patient_id", "kind", "start_us", "end_us", "trust")),
}


def _insert(tx: Tx, table: str, rows: list[tuple[object, ...]]) -> None:
    name, columns = _REGION_INSERTS[table]
    insert_rows(tx, name, columns, rows)


async def _build_region(store: Store, persons: int, seed: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    pending: dict[str, list[tuple[object, ...]]] = {t: [] for t in _REGION_INSERTS}
    for table, row in region_rows(persons, seed):
        pending[table].append(row)
        counts[table] = counts.get(table, 0) + 1
        if len(pending[table]) >= _CHUNK:
            rows, pending[table] = pending[table], []
            await store.write(partial(_insert, table=table, rows=rows))
    for table, rows in pending.items():
        if rows:
            await store.write(partial(_insert, table=table, rows=rows))
    if store.dialect == "postgresql":
        await store.write(lambda tx: tx.execute("ANALYZE"))
    return counts


def _changes(rng: random.Random, persons: int, n: int, round_no: int) -> list[ResourceWrite]:
    """``n`` new Encounters (stays and attendances) and Conditions for existing synthetic people, as a trust
    would send them (the store indexes them as any write)."""
    writes = []
    definitions = load_definitions()
    codes = sorted({c for cs in definitions.condition_sets.values() for c in cs})
    for k in range(n):
        source = f"{TRUSTS[0]}-{rng.randrange(persons)}"
        rid = f"bench-{round_no}-{k}"
        start = (AS_OF - timedelta(days=rng.randrange(300))).isoformat().replace("+00:00", "Z")
        if k % 2:
            body: dict[str, object] = {
                "resourceType": "Condition", "id": rid, "subject": {"reference": f"Patient/{source}"},
                "clinicalStatus": {"coding": [{"code": "active"}]},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": rng.choice(codes)}]},
            }  # fmt: skip
        else:
            body = {
                "resourceType": "Encounter", "id": rid, "status": "finished",
                "subject": {"reference": f"Patient/{source}"},
                "class": {"code": "IMP" if k % 4 == 0 else "EMER"}, "period": {"start": start},
                "hospitalization": {"extension": [{"url": ADMISSION_METHOD_EXTENSION,
                                                   "valueCodeableConcept": {"coding": [{"code": "21"}]}}]},
            }  # fmt: skip
        writes.append(ResourceWrite(str(body["resourceType"]), rid, orjson.dumps(body), "bench", source))
    return writes


def _server_cpu(pids: list[int]) -> float:
    """CPU seconds of the PostgreSQL server's processes (the postmaster's children), when on this machine."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
    return total


def _server_pids(postmaster: int | None) -> list[int]:
    if postmaster is None:
        return []
    out = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == postmaster:
                out.append(int(entry.name))
    return out


def _postmaster(tx: Tx) -> int | None:
    row = tx.query_one("SELECT pg_backend_pid()")
    try:
        return int(Path(f"/proc/{row[0]}/stat").read_text().rsplit(")", 1)[1].split()[1]) if row else None
    except OSError:
        return None  # the server is on another machine: its CPU is not seen from here


async def _timed(coro_fn: Any, server: int | None) -> tuple[float, float, float, Any]:
    pids = _server_pids(server)
    cpu0, server0, t0 = time.process_time(), _server_cpu(pids), time.perf_counter()
    result = await coro_fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    # backends that ended meanwhile are not counted: the pool keeps its connections for the whole run
    return wall, cpu, _server_cpu(pids) - server0, result


def _opt_out_file(path: Path, persons: int, rate: float, seed: int) -> int:
    """A national data opt-out file naming ``rate`` of the synthetic people (a tenth of them type 1)."""
    rng = random.Random(seed + 2)
    chosen = [i for i in range(persons) if rng.random() < rate]
    lines = [f"{nhs_number(i)}{',1' if k % 10 == 0 else ''}" for k, i in enumerate(chosen)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(chosen)


def _sqlite_file(store_url: str) -> Path:
    return Path(store_url.removeprefix("sqlite:///"))


def _load_prebuilt(prebuilt: Path | None, store_file: Path, persons: int, seed: int) -> tuple[dict[str, int], float]:
    """A region built earlier by this generator (same persons and seed, named in the sidecar): building takes longer
    than computing, so a quiet-machine measurement can reuse it. Copied, because the rounds write to it."""
    if prebuilt is None or not prebuilt.exists() or not prebuilt.with_suffix(".json").exists():
        return {}, 0.0
    meta = orjson.loads(prebuilt.with_suffix(".json").read_bytes())
    if (meta["persons"], meta["seed"]) != (persons, seed):
        raise SystemExit(f"{prebuilt} holds {meta['persons']} persons (seed {meta['seed']}), not {persons} ({seed})")
    for suffix in ("", "-wal"):  # no writer runs between the copies, so the file and its WAL agree
        if Path(f"{prebuilt}{suffix}").exists():
            shutil.copyfile(f"{prebuilt}{suffix}", f"{store_file}{suffix}")
    return meta["counts"], meta["build_s"]


def _keep_prebuilt(prebuilt: Path, store_file: Path, meta: dict[str, Any]) -> None:
    for suffix in ("", "-wal"):
        if Path(f"{store_file}{suffix}").exists():
            shutil.copyfile(f"{store_file}{suffix}", f"{prebuilt}{suffix}")
    prebuilt.with_suffix(".json").write_bytes(orjson.dumps(meta))


async def _region(
    store_url: str, persons: int, repeat: int, changes: int, seed: int, opt_out: Path, prebuilt: Path | None = None
) -> dict[str, Any]:
    store_file = _sqlite_file(store_url)
    counts, build_s = await anyio.to_thread.run_sync(_load_prebuilt, prebuilt, store_file, persons, seed)
    async with open_store(store_url) as store:
        if not counts:
            t0 = time.perf_counter()
            counts = await _build_region(store, persons, seed)
            build_s = time.perf_counter() - t0
            if prebuilt:
                meta = {"persons": persons, "seed": seed, "counts": counts, "build_s": build_s}
                await anyio.to_thread.run_sync(_keep_prebuilt, prebuilt, store_file, meta)
        server = await store.read(_postmaster) if store.dialect == "postgresql" else None
        view = View(store)
        cohorts = Cohorts(view, opt_out_file=opt_out)
        rng = random.Random(seed + 1)
        full: list[tuple[float, float, float]] = []
        incremental: list[tuple[float, float, float]] = []
        refresh_rows: list[int] = []
        sizes: dict[str, int] = {}
        removed: dict[str, int] = {}
        loads = [os.getloadavg()[0]]
        await cohorts.compute(as_of=AS_OF)  # warm: caches, the first plan of each statement
        for round_no in range(repeat):
            wall, cpu, srv, runs = await _timed(lambda: cohorts.compute(as_of=AS_OF), server)
            full.append((wall, cpu, srv))
            sizes = {r.group_id: r.member_count for r in runs}
            removed = {r.group_id: r.removed_type1 + r.removed_type2 for r in runs}
            writes = _changes(rng, persons, changes, round_no)
            await store.write(partial(put_resources, writes=writes))
            wall, cpu, srv, _ = await _timed(lambda: cohorts.compute(as_of=AS_OF), server)
            incremental.append((wall, cpu, srv))
            report = cohorts.last_refresh
            refresh_rows.append(sum(report.rows.values()) if report else 0)
            loads.append(os.getloadavg()[0])

    def med(items: list[tuple[float, float, float]], i: int) -> float:
        return round(statistics.median(x[i] for x in items), 2)

    return {
        "persons": persons,
        "rows": counts,
        "build_s": round(build_s, 1),
        "full_wall": med(full, 0), "full_cpu": med(full, 1), "full_server_cpu": med(full, 2),
        "incr_wall": med(incremental, 0), "incr_cpu": med(incremental, 1), "incr_server_cpu": med(incremental, 2),
        "changes": changes, "changes_read": refresh_rows,
        "sizes": sizes,
        "removed": removed,
        "prevalence": {k: round(100 * v / persons, 2) for k, v in sizes.items()},
        "peak_rss_mib": round(_rss_mib()),
        "load": f"{min(loads):.1f}–{max(loads):.1f}",
        "server_cpu_seen": server is not None,
    }  # fmt: skip


def region_main(args: argparse.Namespace) -> None:
    results = []
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        opted_out = _opt_out_file(tmp / "opt-out.txt", args.persons, args.opt_out_rate, args.seed)
        common = (args.persons, args.repeat, args.changes, args.seed, tmp / "opt-out.txt")
        if not args.postgres_only:
            results.append(
                ("SQLite", anyio.run(_region, f"sqlite:///{tmp / 'region.db'}", *common, args.sqlite_prebuilt))
            )
            print(results[-1][1], flush=True)
        if args.postgres_url:
            results.append(("PostgreSQL", anyio.run(_region, _fresh_postgres(args.postgres_url), *common)))
            print(results[-1][1], flush=True)
    lines = [
        "# Cohorts over a region (bench/cohort_compute.py --region)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} {os.cpu_count()} CPUs; command: "
        f"`.venv/bin/python bench/cohort_compute.py --region --persons {args.persons} --repeat {args.repeat} "
        f"--changes {args.changes}{' --postgres-url …' if args.postgres_url else ''}`; synthetic facts (seed "
        f"{args.seed}), computed as of {AS_OF:%Y-%m-%d %H:%M} UTC; {opted_out:,} people "
        f"({args.opt_out_rate:.0%}) under the national data opt-out.",
        "",
        "| backend | persons | fact rows (person / patient / condition / encounter) | build | full compute: wall "
        "| CPU (bench / server) | incremental (+changes): wall | CPU (bench / server) | peak RSS | load "
        "| sizes (% of persons) |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for backend, r in results:
        c = r["rows"]
        server_full = f"{r['full_server_cpu']} s" if r["server_cpu_seen"] else "n/a"
        server_incr = f"{r['incr_server_cpu']} s" if r["server_cpu_seen"] else "n/a"
        sizes = ", ".join(
            f"{k} {v:,} ({r['prevalence'][k]}%; {r['removed'][k]:,} opted out)" for k, v in r["sizes"].items()
        )
        lines.append(
            f"| {backend} | {r['persons']:,} | {c['person']:,} / {c['patient']:,} / {c['condition']:,} / "
            f"{c['encounter']:,} | {r['build_s']} s | {r['full_wall']} s | {r['full_cpu']} s / {server_full} "
            f"| {r['incr_wall']} s (+{r['changes']:,}) | {r['incr_cpu']} s / {server_incr} | {r['peak_rss_mib']} MiB "
            f"| {r['load']} | {sizes} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "bench" / "results" / "cohorts_region.md").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres-url", help="also run on a fresh database of this PostgreSQL server")
    parser.add_argument("--region", action="store_true", help="synthetic region facts instead of a synced world")
    parser.add_argument("--changes", type=int, default=4000, help="--region: new records per incremental round")
    parser.add_argument("--seed", type=int, default=13, help="--region: the generator's seed")
    parser.add_argument("--postgres-only", action="store_true", help="--region: skip SQLite")
    parser.add_argument("--opt-out-rate", type=float, default=0.05, help="--region: share under the opt-out")
    parser.add_argument(
        "--sqlite-prebuilt", type=Path, help="--region: keep the built SQLite region here and reuse it next time"
    )
    args = parser.parse_args()
    if args.region:
        if args.persons == parser.get_default("persons"):
            args.persons = REGION
        region_main(args)
        return
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
