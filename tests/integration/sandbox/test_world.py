"""A whole world: deterministic over time, every trust at once, the CLI around it."""

from __future__ import annotations

import argparse
import hashlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bcconnect.cli import sandbox_cmd
from bcconnect_sandbox import SandboxSettings, World, running_sandboxes
from bcconnect_sandbox.testing import bearer, walk

pytestmark = pytest.mark.anyio


async def _snapshot(world: World, client: httpx.AsyncClient) -> str:
    """A digest of what every HTTP trust serves from the start (history and feed)."""
    digest = hashlib.sha256()
    for trust in ("RL4", "RXK"):
        headers = await bearer(client, world, trust)
        for kind in ("Patient", "Observation", "Condition", "Appointment"):
            url = f"{world.base_url(trust)}/fhir/R4/{kind}/_history?_count=200"
            for page in await walk(client, url, headers):
                for entry in page["entry"]:
                    digest.update(repr((entry.get("request"), entry.get("resource"))).encode())
    key = {"X-API-Key": world.credentials("RNA").api_key or ""}
    cursor = ""
    while True:
        page = (await client.get(f"{world.base_url('RNA')}/api/v2/changes?limit=500{cursor}", headers=key)).json()
        digest.update(repr(page["changes"]).encode())
        cursor = f"&cursor={page['next_cursor']}"
        if not page["has_more"]:
            return digest.hexdigest()


async def test_same_seed_and_same_advances_serve_the_same_data(tmp_path: Path) -> None:
    """Two worlds with equal settings, advanced alike, serve identical histories, feeds and ground truth."""
    settings = SandboxSettings(density=0, persons=120, seed=13, rxk_requests_per_second=0)
    digests = []
    truths = []
    for run in range(2):
        async with running_sandboxes(settings) as world, httpx.AsyncClient() as client:
            await world.advance(days=5)
            await world.advance(days=2)
            digests.append(await _snapshot(world, client))
            world.write_ground_truth(tmp_path / f"gt{run}.csv")
            truths.append((tmp_path / f"gt{run}.csv").read_bytes())
    assert digests[0] == digests[1]
    assert truths[0] == truths[1]


async def test_rare_types_page_in_bounded_scans() -> None:
    """A rare type (Consent) comes back over short pages with next links, and walking them finds all."""
    settings = SandboxSettings(density=0, persons=2600, seed=2, trusts=("RL4",))
    async with running_sandboxes(settings) as world, httpx.AsyncClient(timeout=30) as client:
        headers = await bearer(client, world, "RL4")
        pages = await walk(client, f"{world.base_url('RL4')}/fhir/R4/Consent?_count=50", headers)
        assert len(pages) >= 2  # the scan budget cut the first page short
        consents = [e["resource"] for p in pages for e in p["entry"]]
        assert consents
        assert all(c["provision"]["type"] == "deny" for c in consents)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bcconnect")
    sandbox_cmd.register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_generate_writes_files_and_refuses_bad_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``sandbox generate`` writes the layout and exits 0; --persons out of range is a usage error (2)."""
    args = _parser().parse_args(
        ["sandbox", "generate", "--persons", "12", "--density", "0", "--seed", "1", "--out", str(tmp_path)]
    )
    assert args.handler(args) == 0
    assert (tmp_path / "ground_truth.csv").exists()
    assert "wrote 12 persons" in capsys.readouterr().out
    bad = _parser().parse_args(["sandbox", "generate", "--persons", "5", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exc:
        bad.handler(bad)
    assert exc.value.code == 2
    faults = _parser().parse_args(["sandbox", "serve", "--faults", "explode=1"])
    with pytest.raises(SystemExit) as exc:
        faults.handler(faults)
    assert exc.value.code == 2


SERVE = """
import argparse, sys
from bcconnect.cli import sandbox_cmd
parser = argparse.ArgumentParser(prog="bcconnect")
sandbox_cmd.register(parser.add_subparsers(dest="command"))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.handler(args))
"""


def _start_detached_from_ctrl_c() -> None:
    """What a shell does to a job started with ``&`` (and what ``nohup`` adds): SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT-even-when-inherited-as-ignored"]
)
def test_cli_serve_prints_urls_and_credentials_and_stops_on_a_signal(tmp_path: Path, stop: signal.Signals) -> None:
    """``sandbox serve`` announces each trust (URL and credentials) that then answers; SIGTERM, and SIGINT even
    in a background job where it starts ignored, stop it cleanly (0) because the command handles them itself."""
    command = [
        sys.executable,
        "-c",
        SERVE,
        "sandbox",
        "serve",
        "--persons",
        "20",
        "--density",
        "0",
        "--port-base",
        "0",
        "--hl7-drop-dir",
        str(tmp_path),
    ]
    out = tmp_path / "stdout.txt"
    with out.open("w") as sink:
        child = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=_start_detached_from_ctrl_c,
        )
    try:
        deadline = time.monotonic() + 60
        text = ""
        while "Ctrl-C to stop" not in text:
            assert child.poll() is None, f"sandbox serve exited early:\n{out.read_text()}"
            assert time.monotonic() < deadline, f"sandbox serve did not announce itself in 60 s:\n{text}"
            time.sleep(0.1)
            text = out.read_text()
        rl4 = re.search(r"RL4\s+(http://127\.0\.0\.1:\d+)/fhir/R4.*client_id=(\S+) client_secret=(\S+)", text)
        assert rl4 is not None, text
        assert re.search(r"RNA\s+http://127\.0\.0\.1:\d+/api/v2/changes\s+X-API-Key: \S+", text)
        assert f"files into {tmp_path}" in text
        response = httpx.post(
            f"{rl4[1]}/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": rl4[2], "client_secret": rl4[3]},
            timeout=10,
        )
        assert response.status_code == 200
        child.send_signal(stop)
        assert child.wait(timeout=30) == 0
        assert "stopped" in out.read_text()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
