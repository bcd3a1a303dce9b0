"""Deep paging of one large person: ``$everything`` and ``Observation?patient=`` page by keyset, not offset.

    python bench/person_paging.py --url sqlite:///bench-data/person.db --resources 5000
    python bench/person_paging.py --url postgresql://…/bench --resources 5000

Builds one person known to four trusts (four source Patients linked by the patient index, so a golden Patient
and aliases exist) holding ``--resources`` clinical resources split across the trusts, then measures through
the view (in-process: the cost of the view and the store, no HTTP): the whole record through ``$everything``
at ``_count=1000`` from a source id, and single pages at depth 1 and depth 50 (``_count=50``) of
``$everything`` and of ``Observation?patient=<source id>`` (a search spanning the person). Medians of
``--repeat`` runs; the store is rebuilt each time the command runs. A first page (no snapshot pinned yet) is
always cold: nothing of the person's record is held in memory for it; the pages after it reuse the record read
at the pinned snapshot. The density and the load average are printed with the figures (the machine is shared).

Then ``--cold-pages`` first pages of ``$everything`` one after another in this process (each builds the person's
record index afresh, as a clinician's first request for that person does in a running server): median, p90 and
worst, first with the process's heap tracked by the collector, then frozen as ``bcconnect serve`` freezes it once
it listens (``gc.freeze``). On PostgreSQL the server's CPU per page is added (its processes' CPU from ``/proc``,
summed over the pages and divided by their number: ``/proc`` counts in 10 ms ticks).

``--served N`` then starts ``bcconnect serve --no-auth`` on the same store in its own process (the CLI a user
runs: audit on, start-up heap frozen) and times ``N`` cold first pages of ``GET Patient/rl4-big/$everything
?_count=50`` over one kept-alive loopback connection: wall per request as the client sees it, and the API
process's CPU per request.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson

from bcconnect.fhir.constants import (
    NHS_NUMBER_SYSTEM,
    NHS_NUMBER_VERIFICATION_EXTENSION,
    NHS_NUMBER_VERIFICATION_SYSTEM,
    SOURCE_ORG_TAG_SYSTEM,
    mrn_system,
)
from bcconnect.identity import link_patients
from bcconnect.store import ResourceWrite, Store, Tx, open_store, put_resources
from bcconnect.view import OPEN_ACCESS, View

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proc_cpu import cpu_seconds, free_port, process_tree

TRUSTS = ("RL4", "RBK", "RNA", "RXK")


def _patient(ods: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"{ods.lower()}-big",
        "meta": {"tag": [{"system": SOURCE_ORG_TAG_SYSTEM, "code": ods}]},
        "identifier": [
            {
                "system": NHS_NUMBER_SYSTEM,
                "value": "9990000018",
                "extension": [
                    {
                        "url": NHS_NUMBER_VERIFICATION_EXTENSION,
                        "valueCodeableConcept": {"coding": [{"system": NHS_NUMBER_VERIFICATION_SYSTEM, "code": "01"}]},
                    }
                ],
            },
            {"system": mrn_system(ods), "value": f"{ods}BIG"},
        ],
        "name": [{"family": "Largely", "given": ["Recorded"]}],
        "gender": "female",
        "birthDate": "1950-03-14",
        "address": [{"postalCode": "WV10 1AB"}],
    }


def _clinical(ods: str, n: int) -> dict[str, Any]:
    pid = f"{ods.lower()}-big"
    subject = {"reference": f"Patient/{pid}"}
    tag = {"tag": [{"system": SOURCE_ORG_TAG_SYSTEM, "code": ods}]}
    day = f"20{10 + n % 15:02d}-{1 + n % 12:02d}-{1 + n % 28:02d}"
    if n % 10 == 0:
        return {"resourceType": "Encounter", "id": f"{ods.lower()}-e{n}", "meta": tag, "status": "finished",
                "class": {"code": "AMB"}, "subject": subject, "period": {"start": f"{day}T09:00:00Z"}}  # fmt: skip
    if n % 10 == 1:
        return {"resourceType": "Condition", "id": f"{ods.lower()}-c{n}", "meta": tag, "subject": subject,
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": str(10000 + n)}]},
                "onsetDateTime": day}  # fmt: skip
    return {"resourceType": "Observation", "id": f"{ods.lower()}-o{n}", "meta": tag, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}, "subject": subject,
            "effectiveDateTime": f"{day}T10:{n % 60:02d}:00Z", "valueQuantity": {"value": n % 97}}  # fmt: skip


async def build(store: Store, resources: int) -> None:
    """Four linked source Patients and ``resources`` clinical resources spread over them."""
    for ods in TRUSTS:

        def patient(tx: Tx, ods: str = ods) -> None:
            body = _patient(ods)
            put_resources(tx, [ResourceWrite("Patient", body["id"], orjson.dumps(body), ods.lower(), body["id"])])
            link_patients(tx, [body], ods_code=ods)

        await store.write(patient)
    batch: list[ResourceWrite] = []
    for n in range(resources):
        ods = TRUSTS[n % 4]
        body = _clinical(ods, n)
        batch.append(
            ResourceWrite(body["resourceType"], body["id"], orjson.dumps(body), ods.lower(), f"{ods.lower()}-big")
        )
        if len(batch) == 1000 or n == resources - 1:
            await store.write(lambda tx, rows=batch: put_resources(tx, rows))
            batch = []


class Timing(float):
    """A wall-clock median in ms that also carries the median CPU time this process spent (the machine is
    shared: CPU time moves far less with other work than wall time; PostgreSQL's own work is not in it)."""

    cpu: float

    def __format__(self, spec: str) -> str:
        return f"{float(self):{spec}} (CPU {self.cpu:{spec}})"


async def _median(run: Callable[[], Awaitable[object]], repeat: int) -> Timing:
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        await run()
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    out = Timing(statistics.median(times))
    out.cpu = statistics.median(cpu)
    return out


async def _server_pids(store: Store, url: str) -> list[int]:
    """The PostgreSQL server's processes when it runs on this machine (the postmaster and its children), else []."""
    if not url.startswith("postgresql"):
        return []
    row = await store.read(lambda tx: tx.query_one("SELECT pg_backend_pid()"))
    return _server_processes(int(row[0])) if row else []


def _server_processes(backend: int) -> list[int]:
    try:
        postmaster = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return []  # the server is on another machine: its CPU is not seen from here
    return process_tree(postmaster)


async def cold_pages(store: Store, url: str, view: View, source: str, pages: int) -> str:
    """``pages`` cold first pages of ``$everything`` in a row: wall and CPU median / p90 / worst (ms)."""
    pids = await _server_pids(store, url)
    wall, cpu = [], []
    server_start = cpu_seconds(pids)
    for _ in range(pages):
        start, start_cpu = time.perf_counter(), time.process_time()
        await view.everything(OPEN_ACCESS, source, [("_count", "50")])
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    server = (cpu_seconds(pids) - server_start) * 1000 / pages
    wall.sort()
    cpu.sort()
    p90 = min(len(wall) - 1, int(len(wall) * 0.9))
    line = (
        f"wall median {statistics.median(wall):.1f} p90 {wall[p90]:.1f} worst {wall[-1]:.1f} ms;"
        f" CPU median {statistics.median(cpu):.1f} p90 {cpu[p90]:.1f} worst {cpu[-1]:.1f} ms"
    )
    return line + (f"; server CPU {server:.1f} ms per page" if pids else "")


def _ms_line(samples: list[float], what: str) -> str:
    samples = sorted(samples)
    p90 = samples[min(len(samples) - 1, int(len(samples) * 0.9))]
    return f"{what} median {statistics.median(samples):.1f} p90 {p90:.1f} worst {samples[-1]:.1f} ms"


def served_cold_pages(url: str, pages: int) -> str:
    """``pages`` cold first pages through ``bcconnect serve`` (its own process) over HTTP: wall per request as
    the client sees it, and the API process's CPU per request."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bcconnect.toml"
        config.write_text(f'[store]\nurl = "{url}"\n\n[api]\nhost = "127.0.0.1"\nport = {port}\n', encoding="utf-8")
        env = {**os.environ, "BCCONNECT_SECURITY_USER_RATE_LIMIT_PER_SECOND": "1000000",
               "BCCONNECT_SECURITY_USER_RATE_LIMIT_BURST": "1000000"}  # fmt: skip
        cli = str(Path(sys.executable).with_name("bcconnect"))
        command = [cli, "--config", str(config), "--log-level", "warning", "serve", "--no-auth"]
        with subprocess.Popen(command, env=env, cwd=tmp) as server:
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                    deadline = time.monotonic() + 120
                    while True:
                        try:
                            if client.get("/readyz").status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        if time.monotonic() > deadline or server.poll() is not None:
                            raise SystemExit("bcconnect serve did not become ready")
                        time.sleep(0.2)
                    path = "/fhir/Patient/rl4-big/$everything?_count=50"
                    client.get(path).raise_for_status()  # the connection and the first plans: not a person's first page
                    pids = process_tree(server.pid)
                    wall, cpu = [], []
                    for _ in range(pages):
                        before, start = cpu_seconds(pids), time.perf_counter()
                        response = client.get(path)
                        wall.append((time.perf_counter() - start) * 1000)
                        cpu.append((cpu_seconds(pids) - before) * 1000)
                        response.raise_for_status()
                    total_cpu = sum(cpu) / pages
            finally:
                server.terminate()
                server.wait(timeout=30)
    return f"{_ms_line(wall, 'wall')}; API process CPU {total_cpu:.1f} ms per request (10 ms ticks, averaged)"


async def main(url: str, resources: int, repeat: int, cold: int, served: int = 0) -> None:
    async with open_store(url) as store:
        started = time.perf_counter()
        await build(store, resources)
        took = time.perf_counter() - started
        print(f"built one person: 4 source Patients, {resources} clinical resources in {took:.1f} s")
        # density: what a page has to hold and what the duplicate collapse has to compare
        print(
            f"density: {resources // 4} resources per trust; per 10: 1 Encounter, 1 Condition, 8 Observations "
            "(one LOINC code, values 0-96: some cross-trust duplicates collapse)"
        )
        print(f"load average before timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        view = View(store, max_count=1000)
        source = "rl4-big"

        async def whole_record() -> int:
            page = await view.everything(OPEN_ACCESS, source, [("_count", "1000")])
            count, after, t = len(page.matches), page.after, page.t
            while page.has_more:
                page = await view.everything(OPEN_ACCESS, source, [("_count", "1000")], at=t, after=after)
                count, after = count + len(page.matches), page.after
            return count

        total = await whole_record()
        print(f"$everything from a source id, _count=1000: {total} resources")
        print(f"  whole record (all pages): median {await _median(whole_record, repeat):.0f} ms")

        async def cursor_at(depth: int, fetch: Callable[..., Awaitable[Any]]) -> tuple[int, str | None]:
            page = await fetch(None, None)
            for _ in range(depth - 1):
                page = await fetch(page.t, page.after)
            return page.t, page.after

        async def everything_page(t: int | None, after: str | None) -> Any:
            return await view.everything(OPEN_ACCESS, source, [("_count", "50")], at=t, after=after)

        async def search_page(t: int | None, after: str | None) -> Any:
            result = await view.search(
                OPEN_ACCESS, "Observation", [("patient", source), ("_count", "50")], at=t, after=after
            )
            return result.page

        print(f"load average after the whole-record runs: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for name, fetch in (
            ("$everything _count=50", everything_page),
            ("Observation?patient= _count=50", search_page),
        ):
            for depth in (1, 50):
                t, after = (None, None) if depth == 1 else await cursor_at(depth - 1, fetch)
                ms = await _median(lambda t=t, after=after, fetch=fetch: fetch(t, after), repeat)
                print(f"  {name}, page at depth {depth}: median {ms:.1f} ms")
        if cold:
            print(f"load average before the cold pages: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            print(f"  {cold} cold first pages, heap tracked: {await cold_pages(store, url, view, source, cold)}")
            gc.collect()
            gc.freeze()  # what `bcconnect serve` does once it listens
            print(f"  {cold} cold first pages, heap frozen: {await cold_pages(store, url, view, source, cold)}")
            print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if served:
        print(f"load average before the served pages: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        line = await anyio.to_thread.run_sync(served_cold_pages, url, served)
        print(f"  {served} cold first pages through `bcconnect serve` over HTTP: {line}")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="store URL (an empty SQLite file or PostgreSQL database)")
    parser.add_argument("--resources", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cold-pages", type=int, default=40, help="cold first pages timed one after another (0: none)")
    parser.add_argument("--served", type=int, default=0, help="cold first pages through `bcconnect serve` (0: none)")
    args = parser.parse_args()
    anyio.run(main, args.url, args.resources, args.repeat, args.cold_pages, args.served)
