"""Side by side with SEKMET: the same records, the same wrk scenarios, interleaved rounds, medians.

    .venv/bin/python bench/sekmet_side_by_side.py [--persons 2000] [--rounds 3] [--seconds 5] [--workers 1]
        [--world DIR]  # reuse (or keep) the synced demo world and SEKMET's venv between runs
        [--store-url postgresql://…]  # serve the same world from PostgreSQL (the demo syncs into it)

What it does, all on loopback, bounded, stopping by itself:

1. builds the demo world (`bcconnect demo --no-serve`: four sandbox trusts synced into a store) and exports its
   view (`bcconnect export`: golden and trust Patients, every clinical record pointing at its person);
2. installs SEKMET (``sekmet-fhir`` from the package index) into its own virtual environment, starts it with
   inbound validation off and no auth, and loads the same export through batch Bundles of ``PUT`` (ids kept,
   so the same URLs address the same records);
3. starts ``bcconnect serve`` on the same world with authentication (a real ES256 token from
   ``bcconnect token issue``), screening and audit on; the per-user allowance is raised so wrk measures the
   server rather than the rate limiter (the shared limiter itself still runs on every request);
4. for each round and scenario, runs ``wrk`` (4 connections, one thread) against each server in turn (the order
   alternates between rounds) over a list of request paths drawn from the export, reading each server's CPU time
   (user + system of its process tree, from /proc) and the load average around it; any non-2xx answer fails the
   run;
5. prints medians per scenario and the ratio table (bcconnect req/s over SEKMET req/s, and CPU ms per request).

Needs ``wrk`` (Debian package ``wrk``): installed with apt-get when missing and run as root, else it stops with
a sentence saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_scenarios import REVINCLUDES, WRK_SCRIPT
from proc_cpu import cpu_seconds, free_port, process_tree

SEKMET = "sekmet-fhir==0.1.1"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
GOLDEN_TAG = "golden"


def ensure_wrk() -> str:
    """The wrk binary; installs the Debian package when missing (root only), else stops with a sentence."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing the Debian package 'wrk' …", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, timeout=600, capture_output=True)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit("wrk is not installed and could not be installed here: install the Debian package 'wrk'")


def wait_until_up(url: str, headers: dict[str, str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s")


@dataclass
class Server:
    name: str
    base: str
    process: subprocess.Popen[bytes]
    authorization: str = ""
    #: the database server's postmaster, whose backends' CPU is reported beside the API's
    database_pid: int | None = None

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def database_pids(self) -> list[int]:
        return process_tree(self.database_pid) if self.database_pid else []


@contextmanager
def running(command: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        child = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield child
        finally:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=10)


def bcconnect(*args: str, env: dict[str, str], timeout: float = 1800) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bcconnect.cli.main", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise SystemExit(f"bcconnect {' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-1500:]}")
    return done.stdout


def build_world(world: Path, persons: int, density: str | None, env: dict[str, str]) -> Path:
    """The synced demo world and its exported view (reused when ``world`` already holds them)."""
    demo, export = world / "demo", world / "export"
    if not (demo / "bcconnect.toml").exists():
        print(f"syncing the demo world ({persons} persons, density {density or 'default'}) …", flush=True)
        extra = ["--density", density] if density is not None else []
        bcconnect("demo", "--persons", str(persons), *extra, "--no-serve", "--data-dir", str(demo), env=env)
    if not (export / "Patient.ndjson").exists():
        if export.exists():
            shutil.rmtree(export)
        bcconnect("--config", str(demo / "bcconnect.toml"), "export", "--out", str(export), env=env)
    return demo


def ensure_sekmet(venv: Path) -> Path:
    binary = venv / "bin" / "sekmet"
    if binary.exists():
        return binary
    print(f"installing {SEKMET} into its own venv …", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", SEKMET],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0 or not binary.exists():
        raise SystemExit(f"{SEKMET} could not be installed: {done.stderr.strip()[-500:]}")
    return binary


def load_into_sekmet(base: str, export: Path, batch: int = 250) -> int:
    """PUT every exported resource into SEKMET through batch Bundles (ids kept); returns how many."""
    loaded = 0
    for path in sorted(export.glob("*.ndjson")):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        for start in range(0, len(lines), batch):
            entries = []
            for line in lines[start : start + batch]:
                resource = json.loads(line)
                url = f"{resource['resourceType']}/{resource['id']}"
                entries.append({"resource": resource, "request": {"method": "PUT", "url": url}})
            body = json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries}).encode()
            answer = httpx.post(base, content=body, headers={"Content-Type": "application/fhir+json"}, timeout=600)
            answer.raise_for_status()
            result = answer.json()
            failed = [e for e in result.get("entry", []) if not str(e["response"]["status"]).startswith("20")]
            if failed:
                raise SystemExit(f"SEKMET refused {len(failed)} of {path.name}: {failed[0]['response']}")
            loaded += len(entries)
    return loaded


def _subjects(path: Path) -> set[str]:
    """The Patient ids the resources of one exported type point at."""
    out: set[str] = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            reference = (json.loads(line).get("subject") or {}).get("reference", "")
            if reference.startswith("Patient/"):
                out.add(reference.removeprefix("Patient/"))
    return out


def scenario_paths(export: Path, rng: random.Random, count: int = 400) -> dict[str, list[str]]:
    """Request paths per scenario over persons drawn from the export (the same list for both servers)."""
    golden: list[str] = []
    every: list[str] = []
    numbers: list[str] = []
    for line in (export / "Patient.ndjson").read_text(encoding="utf-8").splitlines():
        patient = json.loads(line)
        every.append(patient["id"])
        if any(t.get("code") == GOLDEN_TAG for t in patient.get("meta", {}).get("tag", [])):
            golden.append(patient["id"])
        numbers.extend(i["value"] for i in patient.get("identifier", []) if i.get("system") == NHS)
    persons = golden or every
    numbers = sorted(set(numbers))
    with_observations = sorted(_subjects(export / "Observation.ndjson")) or persons
    with_encounters = sorted(_subjects(export / "Encounter.ndjson")) or persons
    pick = lambda items: [rng.choice(items) for _ in range(count)]  # noqa: E731
    revinclude = "".join(f"&_revinclude={r}" for r in REVINCLUDES)
    quoted = urllib.parse.quote(NHS + "|", safe="")
    return {
        "Patient/{id}": [f"/Patient/{i}" for i in pick(every)],
        "Patient?identifier=": [f"/Patient?identifier={quoted}{n}" for n in pick(numbers)],
        "Observation?patient=&_count=50": [f"/Observation?patient={i}&_count=50" for i in pick(with_observations)],
        "Encounter?patient=": [f"/Encounter?patient={i}" for i in pick(with_encounters)],
        "Patient/{id}/$everything": [f"/Patient/{i}/$everything" for i in pick(persons)],
        "Patient?_id=&10×_revinclude": [f"/Patient?_id={i}{revinclude}" for i in pick(persons)],
    }


@dataclass
class Sample:
    req_s: float
    cpu_ms: float
    p50_ms: float
    p99_ms: float
    load: float
    db_cpu_ms: float = 0.0


def run_wrk(wrk: str, server: Server, paths: list[str], seconds: float, folder: Path) -> Sample:
    listing = folder / "paths.txt"
    listing.write_text("".join(f"/fhir{p}\n" for p in paths))
    script = folder / "bench.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_PATHS": str(listing), "BENCH_AUTH": server.authorization}
    pids, db_pids = server.pids(), server.database_pids()
    load_before = os.getloadavg()[0]
    cpu, db_cpu = cpu_seconds(pids), cpu_seconds(db_pids)
    done = subprocess.run(
        [
            wrk,
            "-t1",
            "-c4",
            f"-d{seconds:g}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            server.base.rsplit("/fhir", 1)[0],
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    used = cpu_seconds(pids) - cpu
    db_used = cpu_seconds(server.database_pids()) - db_cpu  # backends come and go: the live ones at the end
    load = (load_before + os.getloadavg()[0]) / 2
    line = next((x for x in done.stdout.splitlines() if x.startswith("{")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed against {server.name}: {done.stdout[-800:]} {done.stderr[-800:]}")
    result = json.loads(line)
    if result["non2xx"] or result["socket_errors"]:
        raise SystemExit(
            f"{server.name} answered {result['non2xx']} non-2xx / {result['socket_errors']} socket errors"
            f" over {len(paths)} paths like {paths[0]}"
        )
    requests = max(1, int(result["requests"]))
    return Sample(
        req_s=requests / (result["duration_us"] / 1e6),
        cpu_ms=used / requests * 1000,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        load=load,
        db_cpu_ms=max(0.0, db_used) / requests * 1000,
    )


def check_paths(server: Server, paths: dict[str, list[str]]) -> None:
    """Every scenario answers 200 with a non-empty result on this server before any timing starts."""
    headers = {"Accept": "application/fhir+json"}
    if server.authorization:
        headers["Authorization"] = server.authorization
    for name, listing in paths.items():
        url = server.base + listing[0]
        answer = httpx.get(url, headers=headers, timeout=60)
        if answer.status_code != 200:
            raise SystemExit(f"{server.name}: {name} answered {answer.status_code} ({url}): {answer.text[:300]}")
        body = answer.json()
        if body.get("resourceType") == "Bundle" and not body.get("entry"):
            raise SystemExit(f"{server.name}: {name} found nothing ({url})")


def median(values: list[float]) -> float:
    return statistics.median(values)


def measure(
    args: argparse.Namespace, wrk: str, ours: Server, theirs: Server, export: Path, folder: Path
) -> dict[tuple[str, str], list[Sample]]:
    """Warm both servers, then the interleaved rounds; samples per (scenario, server)."""
    paths = scenario_paths(export, random.Random(7))
    if args.only:
        paths = {k: v for k, v in paths.items() if k in args.only}
    for server in (ours, theirs):
        check_paths(server, paths)
        for listing in paths.values():  # warm both: first touches and page cache
            run_wrk(wrk, server, listing, 1, folder)
    samples: dict[tuple[str, str], list[Sample]] = {}
    for round_no in range(args.rounds):
        order = (ours, theirs) if round_no % 2 == 0 else (theirs, ours)
        for name, listing in paths.items():
            for server in order:
                sample = run_wrk(wrk, server, listing, args.seconds, folder)
                samples.setdefault((name, server.name), []).append(sample)
                print(f"round {round_no + 1} {name:<30} {server.name:<9} {sample.req_s:8.0f} req/s "
                      f"{sample.cpu_ms:6.2f} ms CPU/req p50 {sample.p50_ms:6.1f} ms load {sample.load:.2f}",
                      flush=True)  # fmt: skip
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per scenario, server and round")
    parser.add_argument("--workers", type=int, default=1, help="bcconnect serve --workers")
    parser.add_argument("--density", help="the sandbox's history per person (bcconnect demo --density)")
    parser.add_argument("--world", type=Path, help="keep the synced world, its export and SEKMET's venv here")
    parser.add_argument("--store-url", help="serve (and sync) the world from this store URL instead of SQLite")
    parser.add_argument("--only", action="append", help="run only these scenarios (repeatable)")
    parser.add_argument("--postgres-pid", type=int, help="the PostgreSQL postmaster: report its backends' CPU too")
    args = parser.parse_args()
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp:
        world = args.world.resolve() if args.world else Path(tmp)
        world.mkdir(parents=True, exist_ok=True)
        folder = Path(tmp)
        env = {**os.environ, "BCCONNECT_LOGGING_LEVEL": "warning"}
        if args.store_url:
            env["BCCONNECT_STORE_URL"] = args.store_url
        demo = build_world(world, args.persons, args.density, env)
        export = world / "export"
        resources = sum(1 for p in export.glob("*.ndjson") for line in p.open() if line.strip())
        per_person = resources / max(1, args.persons)
        sekmet_bin = ensure_sekmet(world / "sekmet-venv")
        sekmet_port, our_port = free_port(), free_port()
        # SEKMET's store is kept with the world: loading it through its API takes minutes
        sekmet_dir = world / "sekmet"
        sekmet_dir.mkdir(exist_ok=True)
        sekmet_base = f"http://127.0.0.1:{sekmet_port}/fhir"
        (sekmet_dir / "settings.yaml").write_text(
            f"base_url: {sekmet_base}\nhost: 127.0.0.1\nport: {sekmet_port}\ndata_dir: {sekmet_dir / 'data'}\n"
            "validation:\n  inbound: 'off'\n"
        )
        config = demo / "bcconnect.toml"
        token = bcconnect(
            "--config", str(config), "token", "issue", "--scope", "system/*.rs", "--user", "bench-user",
            "--org", "RL4", "--ttl", "86400", env=env,
        ).strip().splitlines()[-1]  # fmt: skip
        serve_env = {
            **env,
            # the demo's one user is every caller: lift the per-user allowance so wrk measures the server
            "BCCONNECT_SECURITY_USER_RATE_LIMIT_PER_SECOND": "1000000",
            "BCCONNECT_SECURITY_USER_RATE_LIMIT_BURST": "1000000",
            "BCCONNECT_SECURITY_RATE_LIMIT_PER_SECOND": "1000000",
            "BCCONNECT_SECURITY_RATE_LIMIT_BURST": "1000000",
            "BCCONNECT_SECURITY_MAX_INCLUDES": str(len(REVINCLUDES)),
        }
        our_command = [sys.executable, "-m", "bcconnect.cli.main", "--config", str(config), "serve",
                       "--port", str(our_port), "--workers", str(args.workers)]  # fmt: skip
        with (
            running([str(sekmet_bin), "serve", "-c", str(sekmet_dir / "settings.yaml")], env=dict(os.environ),
                    cwd=sekmet_dir, log=folder / "sekmet.log") as sekmet_proc,
            running(our_command, env=serve_env, cwd=demo, log=folder / "bcconnect.log") as our_proc,
        ):  # fmt: skip
            wait_until_up(f"{sekmet_base}/metadata", {})
            marker = sekmet_dir / "loaded"
            if not marker.exists():
                started = time.monotonic()
                loaded = load_into_sekmet(sekmet_base, export)
                print(f"SEKMET loaded {loaded:,} resources in {time.monotonic() - started:.0f} s", flush=True)
                marker.write_text(str(loaded))
            ours = Server(
                "bcconnect", f"http://127.0.0.1:{our_port}/fhir", our_proc, f"Bearer {token}", args.postgres_pid
            )
            theirs = Server("SEKMET", sekmet_base, sekmet_proc)
            wait_until_up(f"{ours.base}/metadata", {"Authorization": ours.authorization})
            try:
                samples = measure(args, wrk, ours, theirs, export, folder)
            except SystemExit:
                # say why: the server logs its refusals and faults at warning and above
                print((folder / "bcconnect.log").read_text(errors="replace")[-4000:])
                raise
            paths = scenario_paths(export, random.Random(7))
            if args.only:
                paths = {k: v for k, v in paths.items() if k in args.only}
        store = "PostgreSQL" if args.store_url else "SQLite"
        print(
            f"\n{args.persons} persons, {resources:,} resources ({per_person:.0f} per person); bcconnect on {store},"
            f" serve --workers {args.workers},"
            f" JWT auth + screening + audit on; SEKMET {SEKMET.split('==')[1]} (SQLite, no auth, validation off);"
            f" wrk -t1 -c4 -d{args.seconds:g}s, {args.rounds} interleaved rounds, medians; {os.cpu_count()} CPUs\n"
        )
        db = args.postgres_pid is not None
        print(
            "| scenario | bcconnect req/s (CPU ms/req"
            + (" API + database" if db else "")
            + ") | SEKMET req/s (CPU ms/req) | ratio | load avg |"
        )
        print("| --- | ---: | ---: | ---: | ---: |")
        for name in paths:
            a, b = samples[(name, "bcconnect")], samples[(name, "SEKMET")]
            ours_rate, their_rate = median([s.req_s for s in a]), median([s.req_s for s in b])
            ours_cpu = f"{median([s.cpu_ms for s in a]):.2f}" + (
                f" + {median([s.db_cpu_ms for s in a]):.2f}" if db else ""
            )
            print(
                f"| `{name}` | {ours_rate:,.0f} ({ours_cpu}) |"
                f" {their_rate:,.0f} ({median([s.cpu_ms for s in b]):.2f}) | {ours_rate / their_rate:.2f}× |"
                f" {median([s.load for s in a + b]):.1f} |"
            )


if __name__ == "__main__":
    main()
