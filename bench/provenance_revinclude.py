"""What Provenance composed on read costs: ``_revinclude=Provenance:target`` on a search page, and a Provenance read.

    python bench/provenance_revinclude.py --url sqlite:///bench-data/prov.db --resources 5000
    python bench/provenance_revinclude.py --url postgresql://…/bench --resources 5000

Builds the one large person of ``bench/person_paging.py`` (four linked source Patients, ``--resources``
clinical resources across four trusts, each tagged with its trust) and measures through the view, in-process
(the view and the store, no HTTP), in interleaved rounds so both sides see the same machine load:

- ``Observation?patient=<source id>&_count=N`` without and with ``_revinclude=Provenance:target`` (N Provenance
  composed per page: the added cost per page and per Provenance);
- ``Provenance?target=Observation/<id>`` and ``Provenance/<id>`` (one composed Provenance).

Medians of wall time and of this process's CPU time (the machine is shared; PostgreSQL's own work is not in the
CPU figure), with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import anyio
import orjson
from person_paging import TRUSTS, build  # a sibling script: run this one from bench/ or as bench/…

from bcconnect.fhir.constants import SOURCE_ORG_TAG_SYSTEM
from bcconnect.store import ResourceWrite, open_store, put_resources
from bcconnect.view import OPEN_ACCESS, View, provenance_id


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main(url: str, resources: int, rounds: int, count: int) -> None:
    async with open_store(url) as store:
        started = time.perf_counter()
        await build(store, resources)
        # each trust's own Organization, so every Provenance names its author by a literal reference
        orgs = [
            {"resourceType": "Organization", "id": f"trust-{ods.lower()}", "name": f"Trust {ods}",
             "meta": {"tag": [{"system": SOURCE_ORG_TAG_SYSTEM, "code": ods}]},
             "identifier": [{"system": SOURCE_ORG_TAG_SYSTEM, "value": ods}]}
            for ods in TRUSTS
        ]  # fmt: skip
        writes = [ResourceWrite("Organization", o["id"], orjson.dumps(o), "bench") for o in orgs]
        await store.write(lambda tx: put_resources(tx, writes))
        took = time.perf_counter() - started
        print(f"built one person: 4 source Patients, {resources} clinical resources in {took:.1f} s")
        view = View(store, max_count=1000)
        search = [("patient", "rl4-big"), ("_count", str(count))]
        first = await view.search(OPEN_ACCESS, "Observation", search)
        observation = first.page.matches[0]
        pid = provenance_id("Observation", observation.id, observation.version)
        assert pid is not None
        with_provenance = await view.search(OPEN_ACCESS, "Observation", [*search, ("_revinclude", "Provenance:target")])
        added = [r for r in with_provenance.page.included if r.resource_type == "Provenance"]
        assert len(added) == len(first.page.matches), "every match brings its Provenance"
        assert b"Organization/trust-" in (added[0].body or b""), "the author is the trust's Organization"

        cases: dict[str, Callable[[], Awaitable[object]]] = {
            f"Observation?patient=&_count={count}": lambda: view.search(OPEN_ACCESS, "Observation", search),
            f"  … &_revinclude=Provenance:target ({len(added)} composed)": lambda: view.search(
                OPEN_ACCESS, "Observation", [*search, ("_revinclude", "Provenance:target")]
            ),
            "Provenance?target=Observation/<id>": lambda: view.search(
                OPEN_ACCESS, "Provenance", [("target", f"Observation/{observation.id}")]
            ),
            "Provenance/<id> (read)": lambda: view.read(OPEN_ACCESS, "Provenance", pid),
        }
        wall: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        print(f"load average before timing: {_load()}")
        for _ in range(rounds):  # interleaved: each round runs every case once
            for name, run in cases.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                await run()
                wall[name].append((time.perf_counter() - start) * 1000)
                cpu[name].append((time.process_time() - start_cpu) * 1000)
        print(f"load average after timing: {_load()}")
        for name in cases:
            print(f"{name}: median {statistics.median(wall[name]):.1f} ms (CPU {statistics.median(cpu[name]):.1f} ms)")
        base, extra = list(cases)[:2]
        per_page = statistics.median(cpu[extra]) - statistics.median(cpu[base])
        each = per_page / len(added)
        print(f"_revinclude=Provenance:target adds {per_page:.1f} ms CPU per page, {each:.2f} ms per Provenance")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="store URL (an empty SQLite file or PostgreSQL database)")
    parser.add_argument("--resources", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    anyio.run(main, args.url, args.resources, args.rounds, args.count)
