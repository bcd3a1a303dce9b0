"""Bulk Data export speed and memory: a Group ``$export`` (and a system ``$export``) through the real service.

    python bench/bulk_export.py --url sqlite:///bench-data/bulk.db --patients 20000 --per-patient 30
    python bench/bulk_export.py --url postgresql://…/bench --patients 20000 --per-patient 30

Builds ``--patients`` synthetic patients (``bench/store_data.py``: Observations, Encounters, Conditions,
medication, allergies, procedures; shared practitioners and organisations) unless ``--reuse``. Then, each in a
fresh child process (so its peak RSS is the export's own), runs an export the way the server's worker does
(``BulkExports.kick_off`` + the worker, the view's screened search with an authenticated system grant, NDJSON
files) and reports wall time, bytes written, MB/s and the child's peak RSS:

- ``group``: a Group of ``--group-fraction`` of the patients (the membership source is a function here, as the
  cohorts package is in the server; the export machinery is the same);
- ``system``: every resource;
- ``…+sensitive``: the same with the sensitive-data grant (the screen's sensitivity-label predicate, a
  correlated check per row, is then not needed: the difference is the cost of that predicate).

Memory is flat when the peak RSS does not grow with the export size: compare ``--patients`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bulk_synthetic
from store_data import batches, shared

from bcconnect.bulk import BulkExports, Level, parse_export_request
from bcconnect.config import BulkSettings
from bcconnect.store import open_store, put_resources
from bcconnect.view import AccessContext, View

SYSTEM_READER = AccessContext(user="bench", purpose="directcare", client_id="bench", readable_types=None)
#: the same reader with the sensitive-data grant: the screen then has no sensitivity-label predicate to apply
SENSITIVE_READER = AccessContext(
    user="bench", purpose="directcare", client_id="bench", readable_types=None, allow_sensitive=True
)


async def build(url: str, patients: int, per_patient: int) -> None:
    async with open_store(url) as store:
        await store.write(lambda tx: put_resources(tx, shared()))
        for batch in batches(patients * per_patient, per_patient, 5000):
            await store.write(lambda tx, b=batch: put_resources(tx, b))  # type: ignore[misc]


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``): unlike ``ru_maxrss``, which Linux carries across ``exec``,
    so a child started by a large parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def build_synthetic(url: str, patients: int, per_patient: int) -> int:
    async with open_store(url) as store:
        return await bulk_synthetic.build(store, patients, per_patient)


async def export(
    url: str,
    run: str,
    patients: int,
    fraction: float,
    out: Path,
    *,
    synthetic: bool,
    group_size: int | None,
    provenance: bool = False,
) -> dict[str, float]:
    level, _, grant = run.partition("+")
    reader = SENSITIVE_READER if grant == "sensitive" else SYSTEM_READER
    async with open_store(url) as store:
        view = View(store, max_count=1000)
        # persons: golden Patients g<i> in the synthetic store, the Patients pat<i> (no person model) otherwise
        stem = "g" if synthetic else "pat"
        if group_size is not None:
            members = [f"{stem}{i}" for i in range(min(group_size, patients))]
        else:
            members = [f"{stem}{i}" for i in range(0, patients, max(1, round(1 / fraction)))]

        async def group_members(access: AccessContext, group_id: str) -> list[str] | None:
            return members

        # an interrupted earlier run leaves its job behind, and the worker would claim that one first
        await store.write(lambda tx: [tx.execute("DELETE FROM bulk_files"), tx.execute("DELETE FROM bulk_jobs")])
        settings = BulkSettings(max_file_mb=256.0, concurrency=1)
        exports = BulkExports(view, settings, out, group_members=group_members)
        served = [c.resource_type for c in await view.capabilities(reader)]
        # the default export carries Provenance (composed per exported version); without --provenance every
        # other served type is named, so the numbers compare with the runs before Provenance was exported
        types = [] if provenance else [("_type", ",".join(t for t in served if t != "Provenance"))]
        request = parse_export_request(
            Level.GROUP if level == "group" else Level.SYSTEM,
            types,
            served_types=served,
            group_id="bench" if level == "group" else None,
        )
        before = resource.getrusage(resource.RUSAGE_SELF)
        cpu_before = before.ru_utime + before.ru_stime
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        job = await exports.kick_off(reader, request, base_url="http://bench/fhir", request_url="bench")
        await exports.work_once()
        seconds = time.perf_counter() - started
        done = await exports.job_for(reader, job.job_id)
        manifest = json.loads(exports.manifest(done))
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = used.ru_utime + used.ru_stime - cpu_before
        folder = out / job.job_id
        size = sum(p.stat().st_size for p in folder.iterdir())
        count = sum(o["count"] for o in manifest["output"])
        return {
            "seconds": round(seconds, 2),
            "megabytes": round(size / 1e6, 1),
            "resources": count,
            "mb_per_s": round(size / 1e6 / seconds, 1),
            # the export's own CPU time (every thread of the child): less sensitive to other work on the machine
            "cpu_seconds": round(cpu, 2),
            "mb_per_cpu_s": round(size / 1e6 / cpu, 1),
            "members": len(members) if level == "group" else patients,
            "peak_rss_mb": peak_rss_mb(),
            # the 1-minute load average at the start and end of the export (2 vCPUs: above 2, others were waiting)
            "load": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        }


#: the exports measured: a Group (10%), the whole record, and the whole record with the sensitive-data grant
RUNS = ("group", "system", "system+sensitive", "group+sensitive")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="sqlite:///bench-data/bulk.db")
    parser.add_argument("--patients", type=int, default=20000)
    parser.add_argument("--per-patient", type=int, default=30)
    parser.add_argument("--group-fraction", type=float, default=0.1)
    parser.add_argument("--reuse", action="store_true", help="keep the store from the last run")
    parser.add_argument(
        "--synthetic", action="store_true", help="build the store with bench/bulk_synthetic.py (fast, direct rows)"
    )
    parser.add_argument("--group-size", type=int, help="members of the Group (instead of --group-fraction)")
    parser.add_argument("--runs", default=",".join(RUNS), help="which exports, comma-separated")
    parser.add_argument(
        "--provenance", action="store_true", help="the default export, with Provenance (otherwise every other type)"
    )
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = anyio.run(
            lambda: export(
                args.url, args.child, args.patients, args.group_fraction, Path(args.out),
                synthetic=args.synthetic, group_size=args.group_size, provenance=args.provenance,
            )
        )  # fmt: skip
        print(json.dumps(result))
        return 0
    if not args.reuse:
        if args.url.startswith("sqlite:///"):
            path = Path(args.url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        started = time.perf_counter()
        if args.synthetic:
            written = anyio.run(build_synthetic, args.url, args.patients, args.per_patient)
            print(
                f"built {written} resources ({args.patients} persons) directly in {time.perf_counter() - started:.0f} s"
            )
        else:
            anyio.run(build, args.url, args.patients, args.per_patient)
            took = time.perf_counter() - started
            print(f"built {args.patients} patients x {args.per_patient} resources in {took:.0f} s")
    extra = ["--synthetic"] if args.synthetic else []
    if args.provenance:
        extra.append("--provenance")
    if args.group_size is not None:
        extra += ["--group-size", str(args.group_size)]
    for level in args.runs.split(","):
        out = Path(tempfile.mkdtemp(prefix="bulk-bench-"))
        try:
            child = subprocess.run(
                [sys.executable, __file__, "--url", args.url, "--patients", str(args.patients),
                 "--group-fraction", str(args.group_fraction), "--child", level, "--out", str(out), *extra],
                check=True, capture_output=True, text=True, timeout=3600, env=os.environ.copy(),
            )  # fmt: skip
        finally:
            shutil.rmtree(out, ignore_errors=True)
        print(f"{level:17} {child.stdout.strip().splitlines()[-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
