"""Triage answers over a synced world: the network worklist (with context), the waiting-list summary and mutual aid.

Starts the four sandboxes in this process, syncs them into a fresh store through the project's adapters and
mappings, then times each answer ``--repeat`` times through the view (as the FHIR operations and pages do) and
reports the median. Bounded: the world has ``--persons`` people and every call runs a fixed number of times.

    .venv/bin/python bench/triage_bench.py --persons 2000 --repeat 5 [--postgres-url URL]

Results are printed and written to ``bench/results/triage.md``.
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

from bcconnect.cli.demo_cmd import demo_adapters
from bcconnect.config import PathSettings, Settings
from bcconnect.ingest import sync_adapters
from bcconnect.store import open_store
from bcconnect.triage import Triage
from bcconnect.view import OPEN_ACCESS, View
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres-url", help="also run on a fresh database of this PostgreSQL server")
    parser.add_argument("--density", type=float, default=1.0, help="sandbox record density (default 1)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bctriage-"))
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
