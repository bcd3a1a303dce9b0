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
import sys
import time
from pathlib import Path

import anyio

# the synthetic population generator is a test helper (tests/support); benchmarks reuse it
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bcconnect.identity import count_reviews, evaluate, link_patients
from bcconnect.store import Tx, open_store
from support.identity_population import population


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    truth: list[tuple[str, str, str]] = []
    async with open_store(args.url) as store:
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
                    await store.write(lambda tx, b=batch, o=ods: link_patients(tx, b, ods_code=o))
                    linking += time.perf_counter() - t0
            if args.progress and (chunk_start // args.chunk) % 10 == 9:
                rate = len(truth) / linking
                print(f"  {chunk_start + size} persons, {len(truth)} records, {rate:.0f} records/s", flush=True)
        batch_seconds = time.perf_counter() - started
        print(f"batch: {len(truth)} source records of {args.persons} persons: linking {linking:.1f}s "
              f"({len(truth) / linking:.0f} records/s, pages of <= {args.page}); wall {batch_seconds:.1f}s "
              "with generation")  # fmt: skip
        online = list(population(args.online, seed=args.seed, noise=args.noise, start=args.persons))
        timings: list[float] = []
        for rec in online:

            def one(tx: Tx, rec: object = rec) -> float:
                t0 = time.perf_counter()
                link_patients(tx, [rec.patient], ods_code=rec.ods_code)  # type: ignore[attr-defined]
                return time.perf_counter() - t0

            timings.append(await store.write(one))
        ms = [t * 1000 for t in timings]
        print(f"online: {len(ms)} records one per transaction: decision p50 {_percentile(ms, 0.5):.2f} ms, "
              f"p99 {_percentile(ms, 0.99):.2f} ms, max {max(ms):.2f} ms")  # fmt: skip
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
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--url", default="sqlite:///bench-data/identity.db")
    args = parser.parse_args()
    if args.url.startswith("sqlite:///"):
        path = Path(args.url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    anyio.run(run, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
