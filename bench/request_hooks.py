"""CPU of the per-request pieces around the handler: the security hook, routing, HTTP dates, the audit packing.

    .venv/bin/python bench/request_hooks.py --config WORLD/demo/bcconnect.toml [--repeat 5]

One thread, no I/O, best of ``--repeat`` runs, in microseconds per call. Builds the security gate exactly as
``bcconnect serve`` does over the configured store and authenticates a real ES256 token from the configured
local issuer (``bcconnect token issue``), so the token cache, the rate limiter and the grant check all run.
Run it from two checkouts (``PYTHONPATH=OTHER/src``) to compare them call for call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import timeit
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bcconnect.api import security_hooks
from bcconnect.api._bundle import http_date
from bcconnect.api._http import Request
from bcconnect.api._router import route
from bcconnect.config import load_settings
from bcconnect.security import SecurityGate
from bcconnect.security._audit import AuditRecord, build_audit_event
from bcconnect.security._audit_codec import pack
from bcconnect.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from request_path import gate_token


async def main(args: argparse.Namespace) -> None:
    config: Path = args.config
    os.chdir(config.parent)
    # the one bench user is every call: its allowance must not be what is measured (the limiter still runs)
    for name in ("USER_RATE_LIMIT_PER_SECOND", "USER_RATE_LIMIT_BURST", "RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST"):
        os.environ[f"BCCONNECT_SECURITY_{name}"] = "1000000"
    settings = load_settings(config, required=True)
    token = gate_token(settings, config)
    headers = {"authorization": f"Bearer {token}"}
    read = Request("GET", "/Patient/abc-123", (), headers, "http://127.0.0.1/fhir", "127.0.0.1")
    search = Request(
        "GET", "/Observation", (("patient", "abc-123"), ("_count", "50")), headers, "http://127.0.0.1/fhir", "127.0.0.1"
    )
    record = AuditRecord(
        recorded=datetime.now(UTC), interaction="read", status=200, method="GET", path="/Patient/abc-123", query="",
        resource_type="Patient", user="bench-user", role="R8000", organisation="RL4", purpose="directcare",
        client_id="bench", remote_address="127.0.0.1", patients=("Patient/abc-123",), detail=None,
        request_id="0" * 32,
    )  # fmt: skip
    event = orjson.dumps(build_audit_event(record, event_id="0" * 36), option=orjson.OPT_SORT_KEYS)
    async with open_store(settings.store_url()) as store:
        authenticate, _ = security_hooks(SecurityGate.from_settings(settings, store))
        results: dict[str, float] = {}
        for name, request in (("security hook, read", read), ("security hook, search", search)):
            await authenticate(request)  # warm: the token is verified once
            runs = []
            for _ in range(args.repeat):
                started = time.process_time()
                for _ in range(2000):
                    await authenticate(request)
                runs.append((time.process_time() - started) / 2000)
            results[name] = min(runs)

        def best(fn: object, number: int) -> float:
            return min(timeit.repeat(fn, number=number, repeat=args.repeat)) / number  # type: ignore[arg-type]

        results["route, three times"] = best(lambda: [route("GET", "/Patient/abc-123") for _ in range(3)], 5000)
        results["http_date"] = best(lambda: http_date("2026-11-30T10:11:12.345Z"), 5000)
        results["pack one AuditEvent"] = best(lambda: pack(event), 2000)
    print(f"load average {os.getloadavg()[0]:.2f}")
    for name, seconds in results.items():
        print(f"| {name} | {seconds * 1e6:.1f} µs |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="the demo world's bcconnect.toml")
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    arguments.config = arguments.config.resolve()
    asyncio.run(main(arguments))
