"""Benchmark a served world: start-up time, page latency over real HTTP, and peak RSS at a given size.

Usage: ``python bench/sandbox_serve.py [N] [--pages P]`` (default 1,000 persons, 200 pages). Walks RL4's
Patient and Observation searches and RNA's change feed for up to P pages each, then prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import anyio
import httpx

from bcconnect_sandbox import SandboxSettings, running_sandboxes
from bcconnect_sandbox.testing import bearer, next_link


async def measure(persons: int, pages: int, density: float) -> dict[str, float]:
    """Start a world of ``persons`` and time ``pages`` pages of each walk."""
    started = time.perf_counter()
    settings = SandboxSettings(persons=persons, seed=1, trusts=("RL4", "RNA"), density=density)
    async with running_sandboxes(settings) as world, httpx.AsyncClient(timeout=120) as client:
        result: dict[str, float] = {
            "persons": persons,
            "density": density,
            "start_seconds": round(time.perf_counter() - started, 3),
        }
        headers = await bearer(client, world, "RL4")
        for kind in ("Patient", "Observation"):
            url: str | None = f"{world.base_url('RL4')}/fhir/R4/{kind}?_count=100&_sort=_lastUpdated"
            t0, n, entries = time.perf_counter(), 0, 0
            while url and n < pages:
                bundle = (await client.get(url, headers=headers)).json()
                entries += len(bundle["entry"])
                url, n = next_link(bundle), n + 1
            result[f"rl4_{kind.lower()}_ms_per_page"] = round((time.perf_counter() - t0) / max(n, 1) * 1000, 2)
            result[f"rl4_{kind.lower()}_entries"] = entries
        key = {"X-API-Key": world.credentials("RNA").api_key or ""}
        cursor, t0, n = "", time.perf_counter(), 0
        while n < pages:
            page = (await client.get(f"{world.base_url('RNA')}/api/v2/changes?limit=100{cursor}", headers=key)).json()
            cursor, n = f"&cursor={page['next_cursor']}", n + 1
            if not page["has_more"]:
                break
        result["rna_ms_per_page"] = round((time.perf_counter() - t0) / n * 1000, 2)
        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        return result


def main() -> None:
    """Parse the size and print the measurements as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("persons", nargs="?", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--density", type=float, default=1.0, help="sandbox record density (default 1)")
    args = parser.parse_args()
    print(json.dumps(anyio.run(measure, args.persons, args.pages, args.density)))


if __name__ == "__main__":
    main()
