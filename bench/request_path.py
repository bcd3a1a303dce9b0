"""The secured request path in-process: CPU per request of the whole app, and where it goes.

    .venv/bin/python bench/request_path.py --config WORLD/demo/bcconnect.toml [--requests 2000] [--concurrency 4]
        [--only read] [--profile py-spy|cprofile] [--top 40] [--without-audit]

Builds the app exactly as ``bcconnect serve`` does (JWT authentication with a real ES256 token, rate limits,
screening, the audit trail by group commit, the operations layer) over the configured store, then drives it
through ASGI calls in this process (no HTTP parser, no sockets, no load generator competing for the CPU): the
same six scenarios as ``bench/sekmet_side_by_side.py``, over persons drawn from the store. For each scenario it
prints the process CPU time per request (every thread: the event loop and the store's worker threads), wall time
per request and the load average. Any non-2xx answer stops the run.

``--profile py-spy`` samples this process with py-spy (every thread, idle frames left out) and prints the share
of samples per function (inclusive: a function and what it calls) and per leaf (exclusive), so a change can be
compared with where the time went before it. ``--profile cprofile`` profiles the event loop thread only.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import orjson

from bcconnect.api import create_app, security_hooks
from bcconnect.config import load_adapters, load_settings
from bcconnect.logging import configure_logging
from bcconnect.ops import OpsApp, readiness_checks, store_scrape
from bcconnect.security import SecurityGate, objecting_patient_ids
from bcconnect.store import Store, open_store
from bcconnect.view import View
from bcconnect.view._view import same_person

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_scenarios import REVINCLUDES

NHS = "https://fhir.nhs.uk/Id/nhs-number"
Message = MutableMapping[str, Any]


async def _persons(store: Store, count: int, rng: random.Random) -> dict[str, list[str]]:
    """Ids to ask for: golden persons, any Patient, NHS numbers, subjects of Observations and Encounters."""

    def run(tx: Any) -> dict[str, list[str]]:
        # as the side-by-side benchmark draws from the export: objectors' records are not asked for (404)
        objecting = objecting_patient_ids(tx, same_person)
        golden = [
            str(r[0])
            for r in tx.query(
                "SELECT DISTINCT a.canonical_id FROM reference_alias a JOIN resources r"
                " ON r.res_type = 'Patient' AND r.res_id = a.canonical_id AND r.deleted = 0"
                " WHERE a.res_type = 'Patient' LIMIT 5000"
            )
            if str(r[0]) not in objecting
        ]
        every = [
            str(r[0])
            for r in tx.query("SELECT res_id FROM resources WHERE res_type = 'Patient' AND deleted = 0 LIMIT 20000")
            if str(r[0]) not in objecting
        ]
        numbers = [
            str(r[0])
            for r in tx.query(
                "SELECT DISTINCT t.code, r.res_id FROM idx_token t JOIN resources r ON r.vid = t.vid"
                " WHERE t.res_type = 'Patient' AND t.param = 'identifier' AND t.system = ? LIMIT 5000",
                (NHS,),
            )
            if str(r[1]) not in objecting
        ]
        subjects: dict[str, list[str]] = {}
        for rtype in ("Observation", "Encounter"):
            subjects[rtype] = [
                str(r[0])
                for r in tx.query(
                    "SELECT DISTINCT compartment FROM resources WHERE res_type = ? AND compartment IS NOT NULL"
                    " AND deleted = 0 LIMIT 5000",
                    (rtype,),
                )
                if str(r[0]) not in objecting
            ]
        return {"golden": golden, "every": every, "numbers": numbers, **subjects}

    found = await store.read(run)
    return {k: [rng.choice(v) for _ in range(count)] if v else [] for k, v in found.items()}


def scenarios(ids: dict[str, list[str]]) -> dict[str, list[str]]:
    """Request paths per scenario (the side-by-side benchmark's six)."""
    revinclude = "".join(f"&_revinclude={r}" for r in REVINCLUDES)
    quoted = urllib.parse.quote(NHS + "|", safe="")
    persons = ids["golden"] or ids["every"]
    return {
        "read": [f"/fhir/Patient/{i}" for i in ids["every"]],
        "identifier": [f"/fhir/Patient?identifier={quoted}{n}" for n in ids["numbers"]],
        "observations": [f"/fhir/Observation?patient={i}&_count=50" for i in ids["Observation"] or persons],
        "encounters": [f"/fhir/Encounter?patient={i}" for i in ids["Encounter"] or persons],
        "everything": [f"/fhir/Patient/{i}/$everything" for i in persons],
        "revinclude": [f"/fhir/Patient?_id={i}{revinclude}" for i in persons],
    }


def _scope(path: str, authorization: str) -> dict[str, Any]:
    route, _, query = path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": urllib.parse.unquote(route),
        "raw_path": route.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8080"),
            (b"accept", b"application/fhir+json"),
            (b"authorization", authorization.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }


async def call(app: Callable[..., Awaitable[None]], path: str, authorization: str) -> int:
    """One GET through the ASGI app; the status."""
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(_scope(path, authorization), receive, send)
    return status


async def drive(app: Any, paths: list[str], authorization: str, concurrency: int) -> tuple[int, float, float]:
    """Every path once over ``concurrency`` tasks; (requests, CPU seconds, wall seconds)."""
    queue = list(reversed(paths))
    failures: list[str] = []

    async def worker() -> None:
        while queue:
            path = queue.pop()
            status = await call(app, path, authorization)
            if status >= 300:
                failures.append(f"{status} {path}")

    cpu, wall = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(worker)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return len(paths), cpu, wall


class StatementTimer:
    """Time and count every statement the store runs (by its first words), per request of a scenario."""

    def __init__(self) -> None:
        self.seconds: collections.Counter[str] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()
        from bcconnect.store import _sqlite

        for name in ("execute", "executemany", "query", "query_one"):
            original = getattr(_sqlite.SqliteTx, name)

            def timed(tx: Any, sql: str, *rest: Any, _original: Any = original) -> Any:
                started = time.perf_counter()
                try:
                    return _original(tx, sql, *rest)
                finally:
                    key = " ".join(sql.split())[:120]
                    self.seconds[key] += time.perf_counter() - started
                    self.calls[key] += 1

            setattr(_sqlite.SqliteTx, name, timed)

    def report(self, name: str, requests: int) -> None:
        print(f"\nstatements per {name} request: {sum(self.calls.values()) / requests:.1f}")
        print("| ms/request | calls/request | statement |\n| ---: | ---: | --- |")
        for key, seconds in self.seconds.most_common(15):
            print(f"| {1000 * seconds / requests:.3f} | {self.calls[key] / requests:.2f} | `{key}` |")
        self.seconds.clear()
        self.calls.clear()


class Sampler:
    """py-spy recording this process into collapsed stacks: samples of whichever thread holds the GIL (what the
    interpreter spends its CPU on; SQLite work in a worker thread that released the GIL is not in it)."""

    def __init__(self, folder: Path) -> None:
        self.out = folder / "profile.txt"
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.child = subprocess.Popen(
            [binary, "record", "--pid", str(os.getpid()), "--format", "raw", "--rate", "250", "--gil",
             "--output", str(self.out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(1.5)  # py-spy attaches

    def stop(self) -> None:
        self.child.send_signal(2)
        self.child.wait(timeout=60)

    def report(self, top: int) -> None:
        inclusive: collections.Counter[str] = collections.Counter()
        leaf: collections.Counter[str] = collections.Counter()
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            count = int(count_text)
            frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
                      if " (" in f else f for f in stack.split(";")]  # fmt: skip
            total += count
            for name in set(frames):
                inclusive[name] += count
            leaf[frames[-1]] += count
        print(f"\npy-spy: {total} samples (idle threads left out)")
        print("| inclusive share | function |\n| ---: | --- |")
        for name, count in inclusive.most_common(top):
            print(f"| {100 * count / total:5.1f}% | `{name}` |")
        print("\n| exclusive share | leaf function |\n| ---: | --- |")
        for name, count in leaf.most_common(top // 2):
            print(f"| {100 * count / total:5.1f}% | `{name}` |")


async def main(args: argparse.Namespace) -> None:
    config: Path = args.config
    os.chdir(config.parent)
    # the bench's one user is every caller: its allowance must not be what is measured (the limiter still runs)
    for name in ("USER_RATE_LIMIT_PER_SECOND", "USER_RATE_LIMIT_BURST", "RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST"):
        os.environ[f"BCCONNECT_SECURITY_{name}"] = "1000000"
    os.environ["BCCONNECT_SECURITY_MAX_INCLUDES"] = str(len(REVINCLUDES))
    settings = load_settings(config, required=True)
    configure_logging(level="warning", fmt="json")
    adapters_dir = settings.resolve(settings.paths.adapters_dir)
    adapters = load_adapters(adapters_dir) if adapters_dir.is_dir() else []
    async with open_store(settings.store_url()) as store:
        gate = SecurityGate.from_settings(settings, store)
        authenticate, on_complete = security_hooks(gate)
        if args.without_audit:
            # measurement only: what the request costs without writing its AuditEvent (never how it is served)
            async def on_complete(*_: Any) -> None:
                return None

        view = View(
            store,
            default_count=settings.api.default_count,
            max_count=settings.api.max_count,
            sensitivity=gate.policy,
            source_ods={a.name: a.ods_code for a in adapters},
            staleness_limits={a.name: a.staleness_limit_seconds for a in adapters},
        )
        app = OpsApp(
            create_app(settings, view, authenticate=authenticate, on_request_complete=on_complete),
            metrics_settings=settings.metrics,
            checks=readiness_checks(store, keys_ready=gate.authenticator.keys_ready),
            scrape=store_scrape(store, ods_codes={}, staleness_limits={}),
        )
        token = gate_token(settings, config)
        authorization = f"Bearer {token}"
        rng = random.Random(7)
        paths = scenarios(await _persons(store, args.requests, rng))
        chosen = args.only or list(paths)
        print(f"store {settings.store_url().split('?')[0]}; load average {os.getloadavg()[0]:.2f}")
        for name in chosen:  # warm: token cache, screening facts, statement caches, page cache
            await drive(app, paths[name][:50], authorization, args.concurrency)
        sampler = Sampler(Path(tempfile.mkdtemp(prefix="request-path-"))) if args.profile == "py-spy" else None
        profiler = cProfile.Profile() if args.profile == "cprofile" else None
        timer = StatementTimer() if args.statements else None
        if profiler is not None:
            profiler.enable()
        print(
            "| scenario | requests | CPU ms/request | wall ms/request | load avg |\n| --- | ---: | ---: | ---: | ---: |"
        )
        for name in chosen:
            count = args.requests if name not in ("everything", "revinclude") else max(1, args.requests // 4)
            done, cpu, wall = await drive(app, paths[name][:count], authorization, args.concurrency)
            print(
                f"| {name} | {done} | {1000 * cpu / done:.3f} | {1000 * wall / done:.3f} | {os.getloadavg()[0]:.1f} |",
                flush=True,
            )
            if timer is not None:
                timer.report(name, done)
        if profiler is not None:
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(args.top)
        if sampler is not None:
            sampler.stop()
            sampler.report(args.top)


def gate_token(settings: Any, config: Path) -> str:
    """A real ES256 token from the configured local issuer (``bcconnect token issue``), valid for a day."""
    done = subprocess.run(
        [sys.executable, "-m", "bcconnect.cli.main", "--config", str(config), "token", "issue",
         "--scope", "system/*.rs", "--user", "bench-user", "--org", "RL4", "--ttl", "86400"],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "BCCONNECT_LOGGING_LEVEL": "warning"},
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the demo world's bcconnect.toml")
    parser.add_argument(
        "--requests", type=int, default=2000, help="requests per simple scenario (a quarter for the rest)"
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--only", action="append", help="run only these scenarios (repeatable)")
    parser.add_argument("--profile", choices=("py-spy", "cprofile"))
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--statements", action="store_true", help="time every SQL statement (adds overhead)")
    parser.add_argument(
        "--without-audit",
        action="store_true",
        help="measurement only: skip each request's AuditEvent, to learn the audit trail's share of the CPU",
    )
    _ = orjson  # the app's JSON library, imported here so its load is not in the first measurement
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval (seconds) for this process")
    arguments = parser.parse_args()
    if arguments.switch_interval:
        sys.setswitchinterval(arguments.switch_interval)
    arguments.config = Path(arguments.config).resolve()
    anyio.run(main, arguments)
