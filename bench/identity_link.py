"""Batch and online linking through the store: throughput, per-record latency and quality.

    .venv/bin/python bench/identity_link.py --persons 100000 --url sqlite:///bench-data/identity.db

Batch: every source record of ``--persons`` persons, generated ``--chunk`` persons at a time and linked trust
by trust in pages of ``--page`` records, each page one write transaction calling ``link_patients`` (the ingest
pipeline's shape). Online: ``--online`` further records linked one per transaction against the loaded index;
the time of the link decision inside the transaction is reported as p50/p99. Quality: pairwise precision and
recall from the store's links.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

import anyio

# the synthetic population generator is a test helper (tests/support); benchmarks reuse it
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bcconnect.identity import count_reviews, evaluate, link_patients
from bcconnect.store import Tx, open_store
from support.identity_population import SourceRecord, population


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _online(store: Any, args: argparse.Namespace, count: int, start: int) -> list[float]:
    """Link ``count`` new persons' records one per transaction; the decision time of each, in ms."""
    timings: list[float] = []
    for rec in population(count, seed=args.seed, noise=args.noise, start=start):

        def one(tx: Tx, rec: SourceRecord = rec) -> float:
            t0 = time.perf_counter()
            link_patients(tx, [rec.patient], ods_code=rec.ods_code, settle=not args.no_settle)
            return time.perf_counter() - t0

        timings.append(await store.write(one) * 1000)
    return timings


async def run(args: argparse.Namespace) -> None:
    truth: list[tuple[str, str, str]] = []
    checkpoints = {int(c) for c in args.checkpoints.split(",") if c}
    async with open_store(args.url) as store:
        if args.online_only is not None:
            # an index loaded by an earlier (perhaps interrupted) run: online latency only, at a chosen moment
            ms = await _online(store, args, args.online, args.online_only)
            print(
                f"online against the loaded index: {len(ms)} records one per transaction: decision p50 "
                f"{_percentile(ms, 0.5):.2f} ms, p99 {_percentile(ms, 0.99):.2f} ms, max {max(ms):.2f} ms"
            )
            return
        started = time.perf_counter()
        linking = 0.0  # time spent in link transactions (generation of the synthetic records excluded)
        # persons stream in chunks (constant memory); each chunk's records go in per-trust pages
        for chunk_start in range(0, args.persons, args.chunk):
            size = min(args.chunk, args.persons - chunk_start)
            chunk = list(population(size, seed=args.seed, noise=args.noise, start=chunk_start))
            truth += [(r.ods_code, r.patient["id"], r.person_id) for r in chunk]
            for ods in sorted({r.ods_code for r in chunk}):
                mine = [r.patient for r in chunk if r.ods_code == ods]
                for start in range(0, len(mine), args.page):
                    batch = mine[start : start + args.page]
                    t0 = time.perf_counter()
                    await store.write(
                        lambda tx, b=batch, o=ods: link_patients(tx, b, ods_code=o, settle=not args.no_settle)
                    )
                    linking += time.perf_counter() - t0
            done = chunk_start + size
            if args.progress and (chunk_start // args.chunk) % 10 == 9:
                rate = len(truth) / linking
                wall = time.perf_counter() - started
                print(f"  {done} persons, {len(truth)} records, linking {linking:.0f}s ({rate:.0f} records/s), "
                      f"wall {wall:.0f}s, peak RSS {_peak_rss_mib():.0f} MiB", flush=True)  # fmt: skip
            if done in checkpoints:
                # new persons from beyond the batch's range, so the sample never meets its own batch records
                sample = await _online(store, args, args.checkpoint_online, args.persons + args.online + done)
                print(f"  checkpoint {done} persons ({len(truth)} records): online {len(sample)} records "
                      f"p50 {_percentile(sample, 0.5):.2f} ms, p99 {_percentile(sample, 0.99):.2f} ms, "
                      f"max {max(sample):.2f} ms; peak RSS {_peak_rss_mib():.0f} MiB", flush=True)  # fmt: skip
        batch_seconds = time.perf_counter() - started
        print(f"batch: {len(truth)} source records of {args.persons} persons: linking {linking:.1f}s "
              f"({len(truth) / linking:.0f} records/s, pages of <= {args.page}); wall {batch_seconds:.1f}s "
              "with generation")  # fmt: skip
        ms = await _online(store, args, args.online, args.persons)
        print(
            f"online: {len(ms)} records one per transaction: decision p50 {_percentile(ms, 0.5):.2f} ms, "
            f"p99 {_percentile(ms, 0.99):.2f} ms, max {max(ms):.2f} ms; peak RSS {_peak_rss_mib():.0f} MiB"
        )
        metrics = await store.read(lambda tx: evaluate(tx, truth))
        reviews = await store.read(lambda tx: count_reviews(tx))
        print(f"quality (batch part): {metrics.summary()} open_reviews={reviews}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--online", type=int, default=2_000)
    parser.add_argument("--page", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=5_000, help="persons generated at a time")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument(
        "--checkpoints", default="", help="comma-separated person counts at which to sample online latency mid-batch"
    )
    parser.add_argument("--checkpoint-online", type=int, default=500, help="online records per checkpoint")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--url", default="sqlite:///bench-data/identity.db")
    parser.add_argument(
        "--no-settle", action="store_true", help="links only: no stable ids or golden Patients (to apportion time)"
    )
    parser.add_argument(
        "--online-only",
        type=int,
        metavar="FIRST_PERSON",
        help="keep the database and only link --online new persons from this index (beyond the loaded ones)",
    )
    args = parser.parse_args()
    if args.url.startswith("sqlite:///") and args.online_only is None:
        path = Path(args.url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    anyio.run(run, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
