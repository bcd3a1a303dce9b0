"""Region scale on PostgreSQL: grow one store toward 10M resources at realistic density, through the real ingest
pipeline, recording the ingest rate as it grows and the read scenarios' p50/p99 at each milestone, with the
RSS of the ingesting process and of the API server sampled throughout and the load average beside each number.

    .venv/bin/python bench/region_scale.py --postgres-url postgresql://… [--milestones 100000,1000000,10000000]
        [--density 1] [--max-minutes 60] [--requests 300] [--out bench/results/region_scale.md]

Ingest: the sandbox's persons (``SandboxSettings.density``, default 1: ~160 resources a person) rendered in
their trusts' own wire formats — RL4 and RXK FHIR, RNA's change feed, RBK's HL7 v2 messages — and handed to
:func:`bcconnect.ingest.process_page` (map, validate, identity, index, commit with the clock) in pages of 500,
the four adapters concurrently, in this process. There is no HTTP between the sandbox and the engine here (the
sync benchmark, ``bench/ingest_sync.py``, measures that path); what is measured is the engine and the store.

Reads: at each milestone the store is ANALYZEd and ``bench/api_server.py`` (the full person-centred view over
HTTP; no authentication in front) serves it; ``--requests`` sequential requests per scenario from a keep-alive
client: ``Patient/{id}``, ``Patient?identifier=``, ``Observation?patient=&_count=50``, ``Encounter?patient=``,
``Patient/{id}/$everything`` and ``Patient?_id=&_revinclude=…`` (three revincludes), on random persons.

The run stops by itself at the last milestone or after ``--max-minutes`` (what it reached is reported, with the
rate so far, so the rest can be extrapolated plainly). The schema it builds is dropped unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_http import Connection, wait_ready

from bcconnect.adapters import Page, RawRecord, hl7_record
from bcconnect.config import AdapterConfig, load_adapters
from bcconnect.ingest import process_page
from bcconnect.mapping import MappingSet, load_mapping_set
from bcconnect.store import Store, open_store
from bcconnect_sandbox.dialects.fhir import RESOURCE_TYPE, to_fhir
from bcconnect_sandbox.dialects.hl7 import messages
from bcconnect_sandbox.dialects.rna import ENTITY, to_rna, uk_datetime
from bcconnect_sandbox.dialects.rxk import rxk_quirks
from bcconnect_sandbox.settings import MAX_PERSONS, SandboxSettings
from bcconnect_sandbox.sources import IdCodec, SourcePatient, trust_records
from bcconnect_sandbox.state import STATIC_TICKS, dense_person

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
NHS = "https://fhir.nhs.uk/Id/nhs-number"
TRUST_OF_ADAPTER = {"rl4": "RL4", "rxk": "RXK", "rna": "RNA", "rbk": "RBK"}
PAGE = 500


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size of a process (Linux /proc), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def fresh_schema(base: str) -> tuple[str, str]:
    """A new schema on the server of ``base``; returns (URL whose search_path is it, schema name)."""
    schema = f"region_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}", schema


def person_records(settings: SandboxSettings, index: int, codecs: dict[str, IdCodec]) -> dict[str, list[RawRecord]]:
    """Person ``index``'s records as each trust sends them, keyed by trust (as the adapters would read them)."""
    person = dense_person(settings, index)
    epoch = settings.now - settings.base_load_span
    tick0 = STATIC_TICKS + index * settings.ticks_per_person
    out: dict[str, list[RawRecord]] = {}
    for trust in person.trusts:
        records = trust_records(person, trust, seed=settings.seed, noise=settings.noise, codec=codecs[trust])
        patients = {r.id: r.fact for r in records if isinstance(r.fact, SourcePatient)}
        raw: list[RawRecord] = []
        for k, record in enumerate(records[: settings.ticks_per_person - 1]):
            at = epoch + timedelta(milliseconds=tick0 + k)
            if trust in ("RL4", "RXK"):
                resource = to_fhir(record, trust, 1, at)
                resource = rxk_quirks(resource) if trust == "RXK" else resource
                rtype = RESOURCE_TYPE[record.kind]
                meta = resource["meta"]
                assert isinstance(meta, dict)
                raw.append(
                    RawRecord(rtype, f"{rtype}/{record.id}", orjson.dumps(resource), "1", str(meta["lastUpdated"]))
                )
            elif trust == "RNA" and record.kind in ENTITY:
                entity = ENTITY[record.kind]
                data = orjson.dumps(to_rna(record))
                raw.append(RawRecord(entity, f"{entity}/{record.id}", data, str(tick0 + k), uk_datetime(at)))
            elif trust == "RBK":
                owner = patients.get(record.patient_id)
                if isinstance(owner, SourcePatient):
                    for message in messages(record, owner, event="new", control=f"RBK{tick0 + k:012d}", at=at):
                        _, parsed = hl7_record(message.encode("utf-8"))
                        if isinstance(parsed, RawRecord):
                            raw.append(parsed)
        out[trust] = raw
    return out


async def ingest_persons(
    store: Store,
    adapters: list[tuple[AdapterConfig, MappingSet]],
    settings: SandboxSettings,
    first: int,
    last: int,
) -> tuple[int, int]:
    """Ingest persons ``first``…``last - 1`` with the four adapters concurrently; (records, resources written)."""
    codecs = {t: IdCodec(settings.seed, t) for t in TRUST_OF_ADAPTER.values()}
    by_trust: dict[str, list[RawRecord]] = {t: [] for t in TRUST_OF_ADAPTER.values()}
    for index in range(first, last):
        for trust, records in person_records(settings, index, codecs).items():
            by_trust[trust] += records
    totals = [0, 0]

    async def one(config: AdapterConfig, mapping_set: MappingSet) -> None:
        records = by_trust[TRUST_OF_ADAPTER[config.name]]
        for start in range(0, len(records), PAGE):
            page = Page(records=tuple(records[start : start + PAGE]), rejects=(), cursor="")
            counts = await process_page(page, config=config, store=store, mapping_set=mapping_set)
            totals[0] += counts.fetched
            totals[1] += counts.resources_written

    async with anyio.create_task_group() as group:
        for config, mapping_set in adapters:
            group.start_soon(one, config, mapping_set)
    return totals[0], totals[1]


def sample_ids(url: str, n: int, seed: int) -> tuple[list[str], list[str]]:
    """Random source Patient ids and NHS numbers from the store."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT v.body FROM resources r JOIN resource_versions v ON v.vid = r.vid"
            " WHERE r.res_type = 'Patient' AND r.source <> 'golden' AND r.deleted = 0"
            " ORDER BY md5(r.res_id || %s) LIMIT %s",
            (str(seed), n),
        ).fetchall()
    ids, numbers = [], []
    for (body,) in rows:
        patient = orjson.loads(bytes(body))
        ids.append(patient["id"])
        for identifier in patient.get("identifier", []):
            if identifier.get("system") == NHS and identifier.get("value"):
                numbers.append(identifier["value"])
    return ids, numbers


def scenarios(ids: list[str], numbers: list[str]) -> list[tuple[str, Callable[[random.Random], str]]]:
    revinclude = "&_revinclude=Observation:patient&_revinclude=Encounter:patient&_revinclude=Condition:patient"
    return [
        ("Patient/{id}", lambda r: f"/fhir/Patient/{r.choice(ids)}"),
        ("Patient?identifier=", lambda r: f"/fhir/Patient?identifier={NHS}%7C{r.choice(numbers)}"),
        ("Observation?patient=&_count=50", lambda r: f"/fhir/Observation?patient={r.choice(ids)}&_count=50"),
        ("Encounter?patient=", lambda r: f"/fhir/Encounter?patient={r.choice(ids)}"),
        ("Patient/{id}/$everything", lambda r: f"/fhir/Patient/{r.choice(ids)}/$everything"),
        ("Patient?_id=&_revinclude ×3", lambda r: f"/fhir/Patient?_id={r.choice(ids)}{revinclude}"),
    ]


async def measure_reads(port: int, server_pid: int, url: str, requests: int, seed: int) -> list[dict[str, Any]]:
    """p50/p99 of each scenario, one client, ``requests`` requests each (after a short warm-up)."""
    await wait_ready(port)
    sampled_ids, sampled_numbers = sample_ids(url, 300, seed)
    out = []
    conn = await Connection.open("127.0.0.1", port)
    try:
        # objectors and restricted persons answer 404 to this caller, as they should: measure the visible ones
        ids = [i for i in sampled_ids if (await conn.get(f"/fhir/Patient/{i}"))[0] == 200]
        numbers = []
        for number in sampled_numbers:
            status, body = await conn.get(f"/fhir/Patient?identifier={NHS}%7C{number}")
            if status == 200 and orjson.loads(body).get("total", 0):
                numbers.append(number)
        for name, make in scenarios(ids, numbers):
            rng = random.Random(seed)
            for _ in range(10):
                await conn.get(make(rng))
            samples = []
            for _ in range(requests):
                path = make(rng)
                started = time.perf_counter()
                status, _ = await conn.get(path)
                samples.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}")
            samples.sort()
            out.append(
                {
                    "scenario": name,
                    "p50_ms": statistics.median(samples),
                    "p99_ms": samples[max(0, int(len(samples) * 0.99) - 1)],
                    "server_rss_mib": rss_mib(server_pid),
                    "load": load(),
                }
            )
    finally:
        conn.close()
    return out


def read_phase(url: str, requests: int, seed: int) -> list[dict[str, Any]]:
    """ANALYZE, start the API server on the store, measure the scenarios, stop it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(HERE / "api_server.py"), "--url", url, "--port", str(port)]
    with subprocess.Popen(command) as server:
        try:
            return asyncio.run(measure_reads(port, server.pid, url, requests, seed))
        finally:
            server.terminate()
            server.wait(timeout=30)


def database_mib(url: str) -> float:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) / 2**20 if row else 0.0


class Report:
    """The Markdown report, rewritten after every step so a stopped run still leaves what it measured."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path, self.header = path, header
        self.growth: list[str] = []
        self.reads: list[str] = []
        self.notes: list[str] = []

    def write(self) -> None:
        lines = [*self.header, "", "## Ingest as the store grows", ""]
        lines += [
            "| resources stored | persons | step records | step resources | step s | resources/s (wall) |"
            " ingest RSS MiB | database MiB | load |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *self.growth,
            "",
            "## Reads at each milestone (one client, sequential)",
            "",
            "| resources stored | scenario | p50 ms | p99 ms | server RSS MiB | load |",
            "| ---: | --- | ---: | ---: | ---: | ---: |",
            *self.reads,
            "",
            *self.notes,
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def persons_in_steps(step: int) -> Iterator[tuple[int, int]]:
    start = 0
    while start < MAX_PERSONS:
        yield start, min(start + step, MAX_PERSONS)
        start += step


async def grow(args: argparse.Namespace, url: str, report: Report) -> None:
    settings = SandboxSettings(persons=MAX_PERSONS, seed=args.seed, density=args.density)
    adapters = [
        (c, load_mapping_set(ROOT / "mappings" / c.mapping_set))
        for c in load_adapters(ROOT / "adapters")
        if c.name in TRUST_OF_ADAPTER
    ]
    milestones = sorted(args.milestones)
    deadline = time.monotonic() + args.max_minutes * 60
    stored = 0
    started = time.monotonic()
    async with open_store(url) as store:
        for first, last in persons_in_steps(args.step_persons):
            step_started = time.perf_counter()
            records, written = await ingest_persons(store, adapters, settings, first, last)
            seconds = time.perf_counter() - step_started
            stored += written
            report.growth.append(
                f"| {stored:,} | {last:,} | {records:,} | {written:,} | {seconds:.1f} | {written / seconds:,.0f} |"
                f" {rss_mib():.0f} | {database_mib(url):,.0f} | {load()} |"
            )
            print(report.growth[-1], flush=True)
            report.write()
            while milestones and stored >= milestones[0]:
                reached = milestones.pop(0)
                for row in await anyio.to_thread.run_sync(read_phase, url, args.requests, args.seed):
                    report.reads.append(
                        f"| {stored:,} (≥ {reached:,}) | {row['scenario']} | {row['p50_ms']:.1f} |"
                        f" {row['p99_ms']:.1f} | {row['server_rss_mib']:.0f} | {row['load']} |"
                    )
                    print(report.reads[-1], flush=True)
                report.write()
            if not milestones:
                break
            if time.monotonic() > deadline:
                elapsed = time.monotonic() - started
                rate = stored / elapsed
                left = [f"{m:,} in ~{(m - stored) / rate / 3600:.1f} h more" for m in milestones]
                report.notes.append(
                    f"Stopped at the time bound ({args.max_minutes} min) with {stored:,} resources stored"
                    f" ({rate:,.0f} resources/s overall, reads included). At that rate: {'; '.join(left)}."
                )
                print(report.notes[-1], flush=True)
                report.write()
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--milestones", default="100000,1000000,10000000")
    parser.add_argument("--density", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--step-persons", type=int, default=500, help="persons ingested between two samples")
    parser.add_argument("--requests", type=int, default=300, help="requests per scenario at each milestone")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="stop after this long (bounded run)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "region_scale.md")
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    args = parser.parse_args()
    args.milestones = [int(m) for m in args.milestones.split(",")]
    url, schema = fresh_schema(args.postgres_url)
    header = [
        "# Region scale on PostgreSQL",
        "",
        f"Command: `.venv/bin/python bench/region_scale.py --postgres-url … --milestones"
        f" {','.join(str(m) for m in args.milestones)} --density {args.density:g} --step-persons"
        f" {args.step_persons} --requests {args.requests} --max-minutes {args.max_minutes:g}`",
        f"Machine: {os.cpu_count()} CPUs shared with other work (load average beside each number); sandbox density"
        f" {args.density:g}; four adapters (RL4, RXK FHIR; RNA feed; RBK HL7 v2) ingesting concurrently in one"
        " process through `process_page`; reads through `bench/api_server.py` (full view, no authentication).",
    ]
    report = Report(args.out, header)
    try:
        anyio.run(grow, args, url, report)
    finally:
        if not args.keep:
            with psycopg.connect(args.postgres_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
