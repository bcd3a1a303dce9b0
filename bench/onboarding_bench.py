"""Benchmark: onboarding a FHIR R4 source with the generic mapping set (``uk-core-generic``).

    .venv/bin/python bench/onboarding_bench.py [--persons 300] [--repeat 3] [--out bench/results/onboarding.md]

Two numbers on the synthetic US-Core-shaped source of the onboarding test (every clinical type, RxNorm/CVX
codes, US identifiers and extensions; ~27 resources per person):

1. map + validate CPU time per record with ``uk-core-generic`` (passthrough, re-keying, terminology flag), one
   process, best of ``--repeat``;
2. a full first sync over loopback HTTP (SMART discovery, CapabilityStatement, paging) into a fresh SQLite
   store, then a second sync with nothing new — wall time, median of ``--repeat``.

The source server runs in the same process (one event loop), so the end-to-end number includes serving it;
a one-person warm-up sync first keeps the one-time import of the FHIR models out of the timings.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
import orjson

from bcconnect.config import (
    AdapterConfig,
    IdentifierSettings,
    PathSettings,
    Settings,
    SourceAuthSettings,
    SourceAuthType,
    SourceKind,
)
from bcconnect.fhir.constants import source_system
from bcconnect.ingest import sync_adapters
from bcconnect.mapping import MappingContext, load_mapping_set
from bcconnect.store import open_store

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the synthetic source lives with the tests that use it
from tests.support.us_core_source import MRN_SYSTEM, UsCoreServer, serving, us_core_population  # noqa: E402

MAPPINGS = ROOT / "mappings"
SECRET_ENV = "BENCH_SOURCE_SECRET"  # noqa: S105 - the name of a variable, not a secret


def mapping_seconds(persons: int, repeat: int) -> tuple[float, int, int]:
    """Best CPU seconds to map every record, the record count and the resources produced."""
    data = us_core_population(persons)
    mapping_set = load_mapping_set(MAPPINGS / "uk-core-generic")
    records = [
        (r["resourceType"], f"{r['resourceType']}/{r['id']}", orjson.dumps(r))
        for rs in data.by_type.values()
        for r in rs
        if r["resourceType"] in mapping_set.record_types
    ]
    system = source_system("XYZ")
    best = float("inf")
    produced = 0
    for _ in range(repeat):
        start = time.process_time()
        produced = 0
        for rtype, key, payload in records:
            context = MappingContext("XYZ", system, key, "2026-11-22T10:00:00Z", MRN_SYSTEM)
            produced += len(mapping_set.map(rtype, payload, context=context).resources)
        best = min(best, time.process_time() - start)
    return best, len(records), produced


async def sync_seconds(persons: int) -> tuple[float, float, int]:
    """Wall seconds of a first sync and of a second (nothing new) one, and the resources written."""
    data = us_core_population(persons)
    async with serving(UsCoreServer(data)) as server:
        config = AdapterConfig(
            name="xyz",
            ods_code="XYZ",
            kind=SourceKind.FHIR_API,
            mapping_set="uk-core-generic",
            base_url=server.fhir_base,
            auth=SourceAuthSettings(
                type=SourceAuthType.OAUTH2_CLIENT_CREDENTIALS, client_id=server.client_id, client_secret_env=SECRET_ENV
            ),
            identifiers=IdentifierSettings(mrn_system=MRN_SYSTEM),
        )
        settings = Settings(root=ROOT, paths=PathSettings(mappings_dir=str(MAPPINGS)))
        with tempfile.TemporaryDirectory() as scratch:
            async with open_store(f"sqlite:///{scratch}/bench.db") as store:
                start = time.perf_counter()
                [first] = await sync_adapters(
                    [config], settings=settings, store=store, environ={SECRET_ENV: server.client_secret}
                )
                first_s = time.perf_counter() - start
                start = time.perf_counter()
                [second] = await sync_adapters(
                    [config], settings=settings, store=store, environ={SECRET_ENV: server.client_secret}
                )
                second_s = time.perf_counter() - start
    if first.status != "OK" or second.status != "OK":
        raise SystemExit(f"a sync was not OK: {first.as_dict()} {second.as_dict()}")
    return first_s, second_s, first.resources_written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "onboarding.md")
    args = parser.parse_args()
    cpu, records, produced = mapping_seconds(args.persons, args.repeat)
    anyio.run(sync_seconds, 1)  # warm-up: the FHIR model imports of the first mapping-set load are not timed
    runs = [anyio.run(sync_seconds, args.persons) for _ in range(args.repeat)]
    first = statistics.median(r[0] for r in runs)
    second = statistics.median(r[1] for r in runs)
    written = runs[0][2]
    lines = [
        "# Onboarding a FHIR R4 source with uk-core-generic",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}, SQLite.",
        f"Source: synthetic US Core, {args.persons} persons, {records} records of 27 mapped types"
        " (+ Provenance, not mapped).",
        f"Command: `.venv/bin/python bench/onboarding_bench.py --persons {args.persons} --repeat {args.repeat}`",
        "",
        "| measure | result |",
        "| --- | --- |",
        f"| map + validate, CPU (best of {args.repeat}) | {cpu:.2f} s for {records} records →"
        f" {records / cpu:,.0f} records/s, {produced} resources |",
        f"| first sync over loopback into SQLite, wall (median of {args.repeat}) | {first:.2f} s →"
        f" {written / first:,.0f} resources/s ({written} written) |",
        f"| second sync, nothing new, wall (median of {args.repeat}) | {second:.2f} s |",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
