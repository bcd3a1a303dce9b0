"""Linkage quality on a synthetic population as noise rises (in-memory index, the linker's own plan).

.venv/bin/python bench/identity_quality.py --persons 20000 --seed 7 --noise 1 2 4
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

# the synthetic population generator is a test helper (tests/support); benchmarks reuse it
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bcconnect.identity import demographics, load_rules
from bcconnect.identity._evaluate import MemoryIndex, pairwise_metrics
from support.identity_population import population


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--noise", type=float, nargs="+", default=[1.0])
    parser.add_argument("--match-at", type=float)
    parser.add_argument("--review-at", type=float)
    args = parser.parse_args()
    rules = load_rules()
    if args.match_at is not None:
        rules = dataclasses.replace(rules, match_at=args.match_at)
    if args.review_at is not None:
        rules = dataclasses.replace(rules, review_at=args.review_at)
    print(f"rules {rules.version} match_at={rules.match_at} review_at={rules.review_at} persons={args.persons}")
    for noise in args.noise:
        records = list(population(args.persons, seed=args.seed, noise=noise))
        # trust by trust, as a first load of four feeds would arrive
        records.sort(key=lambda r: r.ods_code)
        index = MemoryIndex(rules)
        truth = {}
        started = time.perf_counter()
        for rec in records:
            index.link(demographics(rec.patient))
            truth[rec.patient["id"]] = rec.person_id
        elapsed = time.perf_counter() - started
        metrics = pairwise_metrics(index.person_of, truth, review_queue=len(index.review))
        print(
            f"noise x{noise}: {metrics.summary()} link_time={elapsed:.1f}s "
            f"({elapsed / len(records) * 1e6:.0f} us/record)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
