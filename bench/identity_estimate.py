"""Re-estimate the identity model's m/u weights with EM from a synthetic population; writes weights.toml.

.venv/bin/python bench/identity_estimate.py --persons 20000 --seed 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# the synthetic population generator is a test helper (tests/support); benchmarks reuse it
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from identity_sandbox import fhir_patient, sandbox_patients, scaled

from bcconnect.identity import DEFAULT_RULES, EM_PASSES, demographics, estimate_model, format_weights
from support.identity_population import population


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--source", choices=["sandbox", "synthetic"], default="sandbox")
    parser.add_argument("--out", type=Path, default=DEFAULT_RULES.with_name("weights.toml"))
    args = parser.parse_args()
    started = time.perf_counter()
    if args.source == "sandbox":
        by_trust = sandbox_patients(args.persons, args.seed, scaled(args.noise))
        records = [demographics(fhir_patient(p)) for items in by_trust.values() for p, _ in items]
    else:
        records = [demographics(r.patient) for r in population(args.persons, seed=args.seed, noise=args.noise)]
    estimate = estimate_model(records, EM_PASSES, seed=args.seed)
    text = format_weights(
        estimate,
        description=(
            f"bench/identity_estimate.py --source {args.source} --persons {args.persons} --seed {args.seed} "
            f"--noise {args.noise}"
        ),
    )
    args.out.write_text(text, encoding="utf-8")
    print(text)
    print(f"# {len(records)} records in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
