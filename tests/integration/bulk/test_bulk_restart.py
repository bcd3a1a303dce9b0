"""A running export survives its server being killed: ``bcconnect serve`` is SIGKILLed mid-export, started
again, and the client's next polls end in a manifest equal to that of an export that ran straight through."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from bcconnect.security import add_objection
from bcconnect.store import open_store, put_resources
from support.loopback import free_port, wait_until_serving
from support.security_world import _observation, world

# two server starts and a slow (two resources a page) export: generous limits for a machine shared by many suites
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

OBSERVATIONS = 600
PREFER = {"prefer": "respond-async", "accept": "application/fhir+json"}


async def _seed(url: str) -> None:
    many = [_observation(f"bulk-o{i}", "p1", 1 + i % 28) for i in range(OBSERVATIONS)]
    async with open_store(url) as store:
        await store.write(lambda tx: put_resources(tx, [*world(), *many]))
        await store.write(lambda tx: add_objection(tx, "9990000026"))


def _serve(config: Path, port: int, log: Path, base: str) -> subprocess.Popen[bytes]:
    """A ``bcconnect serve`` that answers ``/metadata``; one that does not within two minutes is killed."""
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "bcconnect.cli.main", "--config", str(config), "serve", "--no-auth",
             "--port", str(port)],
            stdout=sink, stderr=sink, env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        )  # fmt: skip
    try:
        wait_until_serving(f"{base}/metadata", process, seconds=120)
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        raise
    return process


def _finish(status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        answer = httpx.get(status_url, headers=PREFER, timeout=10)
        if answer.status_code == 200:
            return dict(answer.json())
        assert answer.status_code == 202, answer.text
        time.sleep(float(answer.headers["retry-after"]))
    pytest.fail("the export never finished")


def _counts(manifest: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for output in manifest["output"]:
        lines = httpx.get(output["url"], timeout=30).content.splitlines()
        assert len(lines) == output["count"]
        assert len({orjson.loads(line)["id"] for line in lines}) == len(lines)  # nothing written twice
        out[output["type"]] = out.get(output["type"], 0) + len(lines)
    return out


def test_an_export_resumes_after_the_server_is_killed(store_url: str, tmp_path: Path) -> None:
    anyio.run(_seed, store_url)
    config = tmp_path / "bcconnect.toml"
    # two resources a page (searches and export reads) and a one-second lease: the export takes many pages,
    # and a dead worker's job is free to resume a second after it died
    config.write_text(
        f'[store]\nurl = "{store_url}"\n[api]\ndefault_count = 2\nmax_count = 2\n'
        "[bulk]\nlease_seconds = 1\nretry_after_seconds = 1\npage_rows = 2\n"
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n',
        encoding="utf-8",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    log = tmp_path / "serve.log"
    process = _serve(config, port, log, base)
    try:
        kick = httpx.get(f"{base}/$export", headers=PREFER, timeout=10)
        assert kick.status_code == 202, kick.text
        status_url = kick.headers["content-location"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            progress = httpx.get(status_url, headers=PREFER, timeout=10)
            assert progress.status_code == 202, "the export finished before the server could be killed"
            if "written" in progress.headers["x-progress"]:
                break  # mid-type: some of a type's pages are written, the rest are not
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        # the job is still there, unfinished, for the server that comes back
        process = _serve(config, port, log, base)
        counts = _counts(_finish(status_url))
        # what an export that ran straight through writes: p1's and p3's records (the objector's screened out,
        # no sensitive grant), each once
        assert counts["Observation"] == OBSERVATIONS + 3
        assert counts["Patient"] == 2
        assert counts["Condition"] == 1
        assert counts["Encounter"] == 2
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
