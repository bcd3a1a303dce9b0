"""``bcconnect serve --workers N``: N API processes on one port, one store, one set of metrics; they all stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import orjson
import pytest

from bcconnect.security import AuditAnchor, ChainReport, ChainState, audit_chains, verify_audit_chain
from bcconnect.store import ResourceWrite, open_store, put_resources
from support.loopback import wait_until_serving

from .conftest import free_port, parse_exposition, value

pytestmark = pytest.mark.slow


PATIENTS = 12


async def _seed(url: str) -> None:
    patients = [
        ResourceWrite("Patient", f"p{i}", orjson.dumps({"resourceType": "Patient", "id": f"p{i}"}), "test", f"p{i}")
        for i in range(PATIENTS)
    ]
    async with open_store(url) as store:
        await store.write(lambda tx: put_resources(tx, patients))


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


async def _audit_trail(url: str, anchor_dir: Path) -> tuple[list[ChainState], ChainReport]:
    points = AuditAnchor(anchor_dir).checkpoints()
    assert sum(1 for p in points if p.final) == sum(1 for p in points if p.seq == 0)  # every opened one closed
    async with open_store(url) as store:
        return await store.read(audit_chains), await store.read(lambda tx: verify_audit_chain(tx, points))


def test_two_workers_share_the_port_the_store_and_the_metrics(tmp_path: Path) -> None:
    """Requests spread over two processes; /metrics from either counts all of them; SIGTERM stops everything."""
    config = tmp_path / "bcconnect.toml"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    config.write_text(f'[store]\nurl = "{url}"\n', encoding="utf-8")
    anyio.run(_seed, url)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bcconnect.cli.main", "--config", str(config), "serve", "--no-auth",
         "--port", str(port), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/readyz", process, seconds=60)
        workers = _children(process.pid)
        assert len(workers) == 2
        for _ in range(40):
            # a new connection each time, so the kernel may hand it to either worker
            with httpx.Client(base_url=base, timeout=10) as client:
                assert client.get("/fhir/metadata").status_code == 200
        # paging across processes: every next link works whichever worker made it and whichever serves it
        url_next: str | None = f"{base}/fhir/Patient?_count=1"
        pages = 0
        while url_next:
            with httpx.Client(timeout=10) as client:
                page = client.get(url_next)
            assert page.status_code == 200, page.text
            pages += 1
            url_next = next((link["url"] for link in page.json().get("link", []) if link["relation"] == "next"), None)
        assert pages == PATIENTS
        samples = parse_exposition(httpx.get(f"{base}/metrics", timeout=10).text)
        assert value(samples, "bcconnect_http_requests_total", interaction="capabilities", status="200") == 40
        assert value(samples, "bcconnect_http_requests_total", interaction="search-type", status="200") == PATIENTS
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        time.sleep(0.5)
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        # each process audited into a chain of its own and closed it on the way out, with a final checkpoint
        chains, report = anyio.run(_audit_trail, url, tmp_path / "bcconnect-data" / "audit-anchor")
        assert report.ok, report
        writers = [c for c in chains if c.chain != "main"]
        assert 1 <= len(writers) <= 2
        assert all(c.closed for c in writers)
        assert len({c.writer for c in writers}) == len(writers)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
