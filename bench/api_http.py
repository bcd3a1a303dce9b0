"""HTTP benchmark of the FHIR endpoint over loopback (uvicorn in a separate process).

    python bench/store_ingest.py --url sqlite:///bench-data/b.db --resources 100000   # build a store first
    python bench/api_http.py --url sqlite:///bench-data/b.db --patients 5000

Measures, with a minimal keep-alive HTTP/1.1 client (so the load generator costs little CPU): read and
``Patient?identifier=`` latency with one client and throughput with ``--concurrency`` clients,
``Observation?patient=&code=&date=ge`` latency, and ``$everything`` of the 300-resource patient.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_data import NHS, OBS_CODES, nhs_number

HERE = Path(__file__).resolve().parent


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def get(self, path: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: application/fhir+json\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        body = await self.reader.readexactly(length)
        return status, body

    def close(self) -> None:
        self.writer.close()


async def run(
    port: int, make_path: Callable[[random.Random], str], requests: int, concurrency: int
) -> dict[str, float]:
    """``requests`` GETs over ``concurrency`` connections; latency percentiles and throughput."""
    samples: list[float] = []
    per_worker = requests // concurrency

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        conn = await Connection.open("127.0.0.1", port)
        try:
            for _ in range(per_worker):
                path = make_path(rng)
                started = time.perf_counter()
                status, _ = await conn.get(path)
                samples.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise RuntimeError(f"{path} -> {status}")
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2),
        "req_s": round(len(samples) / elapsed),
        "n": len(samples),
        "concurrency": concurrency,
    }


async def wait_ready(port: int) -> None:
    """Poll /metadata until the server answers (bounded)."""
    for _ in range(200):
        try:
            conn = await Connection.open("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        status, _ = await conn.get("/fhir/metadata")
        conn.close()
        if status == 200:
            return
    raise RuntimeError("the server did not start")


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU of the server process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def scenarios(args: argparse.Namespace, port: int, pid: int) -> None:
    """Run each scenario; report latency, throughput and the server's CPU per request."""
    await wait_ready(port)
    n = args.patients

    def identifier(rng: random.Random) -> str:
        return f"/fhir/Patient?identifier={NHS}%7C{nhs_number(rng.randrange(n))}"

    def read(rng: random.Random) -> str:
        return f"/fhir/Patient/pat{rng.randrange(n)}"

    def observation(rng: random.Random) -> str:
        code = rng.choice(OBS_CODES)
        return f"/fhir/Observation?patient=pat{rng.randrange(n)}&code=http://loinc.org%7C{code}&date=ge2018-01-01"

    def everything(rng: random.Random) -> str:
        return "/fhir/Patient/pat-big/$everything?_count=1000"

    await run(port, identifier, 200, 4)  # warm-up
    plan = [
        ("read c=1", read, args.requests, 1),
        (f"read c={args.concurrency}", read, args.requests * 2, args.concurrency),
        ("identifier c=1", identifier, args.requests, 1),
        (f"identifier c={args.concurrency}", identifier, args.requests * 2, args.concurrency),
        ("observation c=1", observation, args.requests, 1),
        ("everything-300 c=1", everything, max(50, args.requests // 10), 1),
    ]
    for name, make_path, requests, concurrency in plan:
        cpu = server_cpu_seconds(pid)
        result = await run(port, make_path, requests, concurrency)
        result["server_cpu_us_per_req"] = round((server_cpu_seconds(pid) - cpu) / result["n"] * 1e6)
        print(f"{name:<22} {result}", flush=True)


def main(args: argparse.Namespace) -> None:
    """Start the server process, run the scenarios, stop the server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(HERE / "api_server.py"), "--url", args.url, "--port", str(port)]
    if args.plain:
        command.append("--plain")
    with subprocess.Popen(command) as server:
        try:
            asyncio.run(scenarios(args, port, server.pid))
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--patients", type=int, required=True, help="patients in the store (pat0 … patN-1)")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--plain", action="store_true", help="serve a pass-through view (store + API layers only)")
    main(parser.parse_args())
