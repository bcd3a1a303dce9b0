"""Ingest synthetic resources into a store and report the write rate as it grows, then store-level query times.

    python bench/store_ingest.py --url sqlite:///bench-data/b.db --resources 100000
    python bench/store_ingest.py --url postgresql://… --resources 100000 --fresh-schema

Each batch is one ``put_resources`` transaction (as the ingest pipeline commits a page). Query timings call
the store directly (no HTTP): identifier search, an Observation search by patient+code+date, $everything of
the 300-resource patient.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_data import NHS, OBS_CODES, batches, big_patient, nhs_number, shared

from bcconnect.search import parse_search
from bcconnect.store import (
    EverythingQuery,
    ResourceWrite,
    Store,
    Tx,
    Visibility,
    WriteCounts,
    everything,
    open_store,
    put_resources,
    search,
)


def _put(batch: list[ResourceWrite], tx: Tx) -> WriteCounts:
    return put_resources(tx, batch)


async def _timed(store: Store, fn: Any, runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await store.read(fn)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 3), "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 3)}


async def queries(store: Store, patients: int, runs: int) -> dict[str, Any]:
    """Store-level latencies of the three benchmark queries."""
    rng = random.Random(3)

    def identifier(tx: Any) -> Any:
        q = parse_search("Patient", [("identifier", f"{NHS}|{nhs_number(rng.randrange(patients))}")])
        page = search(tx, q, visibility=Visibility.everything())
        assert len(page.matches) == 1
        return page

    def observation(tx: Any) -> Any:
        q = parse_search(
            "Observation",
            [
                ("patient", f"pat{rng.randrange(patients)}"),
                ("code", f"http://loinc.org|{rng.choice(OBS_CODES)}"),
                ("date", "ge2018-01-01"),
            ],
        )
        return search(tx, q, visibility=Visibility.everything())

    def everything_big(tx: Any) -> Any:
        page = everything(tx, EverythingQuery("pat-big", count=1000), visibility=Visibility.everything())
        assert len(page.matches) >= 300
        return page

    return {
        "identifier": await _timed(store, identifier, runs),
        "observation": await _timed(store, observation, runs),
        "everything_300": await _timed(store, everything_big, max(20, runs // 10)),
    }


async def main(args: argparse.Namespace) -> None:
    """Ingest, report, query."""
    async with open_store(args.url, pool_size=4) as store:
        await store.write(lambda tx: put_resources(tx, shared() + big_patient()))
        done, window_start, window_done = 0, time.perf_counter(), 0
        started = time.perf_counter()
        for batch in batches(args.resources, args.per_patient, args.batch, start=args.start_patient):
            await store.write(partial(_put, batch))
            done += len(batch)
            window_done += len(batch)
            if window_done >= args.report_every:
                now = time.perf_counter()
                rate = window_done / (now - window_start)
                print(
                    f"ingested {done + args.start_patient * args.per_patient:>9} resources  {rate:8.0f} resources/s",
                    flush=True,
                )
                window_start, window_done = now, 0
        total_s = time.perf_counter() - started
        print(f"ingest: {done} resources in {total_s:.1f}s = {done / total_s:.0f} resources/s", flush=True)
        patients = (args.start_patient * args.per_patient + done) // args.per_patient
        print("store-level queries:", await queries(store, patients, args.runs), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--per-patient", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--report-every", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--start-patient", type=int, default=0, help="continue a store made by an earlier run")
    anyio.run(main, parser.parse_args())
