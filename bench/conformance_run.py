"""Benchmark: how long each conformance pack takes against the demo and the sandboxes.

    .venv/bin/python bench/conformance_run.py [--persons 120] [--repeat 3] [--out bench/results/conformance.md]

A trust runs these packs in its CI, so their run time matters. Measured as an operator meets them:

- ``server`` against ``bcconnect demo`` (a child process over loopback HTTP, four trusts synced, JWT auth),
  with an objector named as the e2e test does; once at the runner's polite default of 15 requests a second
  and once unpaced (``rate=0``), so the pacing's share is visible;
- ``source-fhir`` against the RL4 and RXK sandboxes (RXK throttles, so its 429 probe waits out a Retry-After),
  ``source-json`` against RNA, ``source-hl7`` against RBK over MLLP (30 messages; the resend and AE probes
  wait for the sender's ACK timeout).

Each row: checks, requests made, median and range of ``--repeat`` runs, and the three slowest checks of the
median run. Every run must pass its error-severity checks (a failing run is reported, never timed as usual).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx

from bcconnect.conformance import Report, console_summary, run_pack
from bcconnect_sandbox import SandboxSettings, running_sandboxes
from bcconnect_sandbox.world import World

NHS = "https://fhir.nhs.uk/Id/nhs-number"
STARTUP_DEADLINE_SECONDS = 600


@dataclass
class Timed:
    """The repeated runs of one pack against one target."""

    pack: str
    target: str
    reports: list[Report]

    def row(self) -> str:
        seconds = sorted(r.seconds for r in self.reports)
        median_run = min(self.reports, key=lambda r: abs(r.seconds - statistics.median(seconds)))
        requests = sum(len(c.exchanges) for c in median_run.results)
        slowest = sorted(median_run.results, key=lambda c: c.seconds, reverse=True)[:3]
        slow = ", ".join(f"`{c.check.id}` {c.seconds:.1f} s" for c in slowest)
        verdict = "pass" if all(r.passed for r in self.reports) else "**FAIL**"
        return (
            f"| `{self.pack}` | {self.target} | {len(median_run.results)} | {requests} | "
            f"{statistics.median(seconds):.1f} s ({seconds[0]:.1f}–{seconds[-1]:.1f}) | {slow} | {verdict} |"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    """``bcconnect demo`` as a child process, until :meth:`stop`."""

    def __init__(self, persons: int, data_dir: Path) -> None:
        self.port = _free_port()
        argv = [sys.executable, "-m", "bcconnect.cli.main", "--log-level", "warning", "demo", "--persons", str(persons)]
        argv += ["--port", str(self.port), "--data-dir", str(data_dir)]
        self.child = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.child.stdout is not None
        lines: list[str] = []
        watchdog = threading.Timer(STARTUP_DEADLINE_SECONDS, self.child.kill)
        watchdog.start()
        try:
            for line in self.child.stdout:  # the demo prints the token last, once it serves
                lines.append(line)
                if line.startswith("TOKEN="):
                    break
        finally:
            watchdog.cancel()
        if not lines or not lines[-1].startswith("TOKEN="):
            self.stop()
            raise SystemExit("the demo did not start:\n" + "".join(lines))
        self.token = lines[-1].removeprefix("TOKEN=").strip()
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self.data_dir = data_dir
        found = re.search(r"nhs-number\|(\d{10})", "".join(lines))
        self.nhs_number = found.group(1) if found else ""

    def objector(self) -> str:
        """A person other than the demo's named one, put in the objection register with the CLI."""
        bundle = httpx.get(
            f"{self.base}/Patient",
            params={"_count": "100"},
            headers={"authorization": f"Bearer {self.token}"},
            timeout=30,
        ).json()
        numbers = {
            i["value"] for e in bundle["entry"] for i in e["resource"].get("identifier", []) if i["system"] == NHS
        }
        chosen: str = sorted(numbers - {self.nhs_number})[0]
        config = str(self.data_dir / "bcconnect.toml")
        subprocess.run(
            [sys.executable, "-m", "bcconnect.cli.main", "--config", config, "objection", "add", chosen],
            check=True,
            capture_output=True,
            timeout=120,
        )
        return chosen

    def stop(self) -> None:
        self.child.send_signal(signal.SIGTERM)
        try:
            self.child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
        if self.child.stdout is not None:
            self.child.stdout.close()


async def _repeat(repeat: int, run: Callable[[], Awaitable[Report]]) -> list[Report]:
    reports = []
    for _ in range(repeat):
        report = await run()
        if not report.passed:
            print(console_summary(report), file=sys.stderr)
        reports.append(report)
    return reports


def _fhir_options(world: World, trust: str) -> dict[str, str]:
    cred = world.credentials(trust)
    return {
        "client_id": cred.client_id or "",
        "client_secret": cred.client_secret or "",
        "token_url": f"{world.base_url(trust)}/oauth2/token",
        "types": "Patient,Encounter,Observation,Condition",
    }


async def source_packs(persons: int, repeat: int) -> list[Timed]:
    """The source packs against the sandboxes, with the settings of the integration tests."""
    timed = []
    async with running_sandboxes(SandboxSettings(persons=persons, seed=3, trusts=("RL4",))) as world:
        await world.advance(days=20)  # deletes to report
        base = f"{world.base_url('RL4')}/fhir/R4"
        reports = await _repeat(repeat, lambda: run_pack("source-fhir", base, _fhir_options(world, "RL4")))
        timed.append(Timed("source-fhir", f"RL4 sandbox ({persons} persons)", reports))
    settings = SandboxSettings(persons=persons, seed=3, trusts=("RXK",), rxk_requests_per_second=40)
    async with running_sandboxes(settings) as world:
        base = f"{world.base_url('RXK')}/fhir/R4"
        reports = await _repeat(repeat, lambda: run_pack("source-fhir", base, _fhir_options(world, "RXK")))
        timed.append(Timed("source-fhir", f"RXK sandbox ({persons} persons, throttles at 40/s)", reports))
    async with running_sandboxes(SandboxSettings(persons=persons, seed=3, trusts=("RNA",))) as world:
        await world.advance(days=30)
        key = world.credentials("RNA").api_key or ""
        reports = await _repeat(repeat, lambda: run_pack("source-json", world.base_url("RNA"), {"api_key": key}))
        timed.append(Timed("source-json", f"RNA sandbox ({persons} persons)", reports))

    async def hl7_once() -> Report:
        port = _free_port()
        result: list[Report] = []
        settings = SandboxSettings(persons=40, seed=6, trusts=("RBK",), hl7_ack_timeout=0.5)
        async with running_sandboxes(settings, hl7_target=("127.0.0.1", port)) as world:

            async def runner() -> None:
                options = {"messages": "30", "wait": "20", "idle": "3"}
                result.append(await run_pack("source-hl7", f"mllp://127.0.0.1:{port}", options))

            async with anyio.create_task_group() as tg:
                tg.start_soon(runner)
                await anyio.sleep(0.3)  # the runner is listening
                await world.deliver_hl7(limit=30)
        return result[0]

    timed.append(
        Timed("source-hl7", "RBK sandbox over MLLP (30 messages, ACK timeout 0.5 s)", await _repeat(repeat, hl7_once))
    )
    return timed


def server_pack(persons: int, repeat: int) -> list[Timed]:
    """The server pack against the demo, paced (the default) and unpaced."""
    with tempfile.TemporaryDirectory(prefix="bench-conformance-") as folder:
        started = time.perf_counter()
        demo = Demo(persons, Path(folder))
        print(f"demo ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        try:
            options = {"token": demo.token, "objector": demo.objector()}
            paced = anyio.run(_repeat, repeat, lambda: run_pack("server", demo.base, options))
            unpaced = anyio.run(_repeat, repeat, lambda: run_pack("server", demo.base, {**options, "rate": "0"}))
        finally:
            demo.stop()
    where = f"demo ({persons} persons, four trusts)"
    return [Timed("server", f"{where}, 15 requests/s (default)", paced), Timed("server", f"{where}, unpaced", unpaced)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/conformance.md"))
    args = parser.parse_args()
    rows = server_pack(args.persons, args.repeat)
    rows += anyio.run(source_packs, args.persons, args.repeat)
    load = os.getloadavg()
    lines = [
        "# Conformance packs: run time",
        "",
        f"`bench/conformance_run.py --persons {args.persons} --repeat {args.repeat}` on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}), load average at the end "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}.",
        "",
        "| pack | target | checks | requests (median run) | wall, median (range) | slowest checks | error checks |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(t.row() for t in rows),
        "",
    ]
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    if not all(r.passed for t in rows for r in t.reports):
        sys.exit(1)


if __name__ == "__main__":
    main()
