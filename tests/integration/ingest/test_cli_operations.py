"""Operating the pipeline from the command line, as an integration engineer does: sync, status, quarantine
list/show/replay/resolve, remap — each through the real ``bcconnect`` command against loopback sandboxes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio.from_thread
import pytest

from bcconnect.cli.demo_cmd import write_demo_config
from bcconnect_sandbox import FaultSettings, SandboxSettings, World, running_sandboxes
from support.sandbox_world import world_adapters

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str], World]]:
    """RL4 and RBK (file drop, some messages broken) sandboxes and a configuration pointing at them."""
    drop = tmp_path_factory.mktemp("drop")
    data = tmp_path_factory.mktemp("deploy")
    faults = FaultSettings(seed=4, hl7_malformed_rate=0.15)
    settings = SandboxSettings(density=0, persons=40, seed=17, trusts=("RL4", "RBK"), faults=faults)
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running_sandboxes(settings, hl7_drop_dir=drop)) as world,
    ):
        portal.call(world.deliver_hl7)
        configs, environ = world_adapters(world, hl7_drop_dir=data / "drop")
        shutil.copytree(drop, data / "drop")
        config = write_demo_config(data, port=8080, configs=configs, environ=environ)
        yield config, {**os.environ, **environ}, world


def _cli(deployment: tuple[Path, dict[str, str], World], *args: str) -> subprocess.CompletedProcess[str]:
    config, env, _ = deployment
    return subprocess.run(
        [sys.executable, "-m", "bcconnect.cli.main", "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_an_engineer_syncs_inspects_repairs_and_replays(deployment: tuple[Path, dict[str, str], World]) -> None:
    """The whole operator loop, from a sync with broken messages to an empty quarantine."""
    synced = _cli(deployment, "sync")
    # 15% of RBK's messages are broken: the run reaches the end, but says DEGRADED and exits 3, not "ok"/0
    assert synced.returncode == 3, synced.stdout + synced.stderr
    assert re.search(
        r"^rbk: fetched \d+ = .* quarantined [1-9]\d* \(balanced\).* — DEGRADED: .*records quarantined",
        synced.stdout,
        re.M,
    ), synced.stdout
    assert re.search(r"^rl4: fetched \d+ = .* \(balanced\).* — ok$", synced.stdout, re.M)

    status = json.loads(_cli(deployment, "status", "--json").stdout)
    by_name = {row["adapter"]: row for row in status}
    assert by_name["rbk"]["last_status"] == "DEGRADED"
    assert "quarantined" in by_name["rbk"]["last_detail"]
    assert by_name["rl4"]["last_status"] == "OK"
    table = _cli(deployment, "status").stdout
    assert re.search(r"^rbk: last run DEGRADED: ", table, re.M), table
    assert by_name["rbk"]["quarantine_depth"] > 0
    assert by_name["rl4"]["last_success"] is not None
    assert by_name["rl4"]["stale"] is False

    listing = _cli(deployment, "quarantine", "list", "--adapter", "rbk")
    depth = by_name["rbk"]["quarantine_depth"]
    assert listing.stdout.startswith(f"{depth} open quarantined records: rbk {depth}\n"), listing.stdout
    groups = listing.stdout.split("group(s) by reason:\n", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert sum(int(line.split()[0]) for line in groups) == depth  # the groups add up to the total
    # a broken separator fails parsing, or (in a segment a message type can do without) leaves a key empty
    assert all(line.split()[3] in ("parse", "mapping") for line in groups)
    records = listing.stdout.split("more):\n", 1)[1].splitlines()[1:]
    ids = [int(line.split()[0]) for line in records if line.strip()]
    assert len(ids) == depth
    few = _cli(deployment, "quarantine", "list", "--limit", "1")
    assert f"records (first 1 of {depth};" in few.stdout
    assert _cli(deployment, "quarantine", "list", "--reason", "no such reason").stdout.startswith("0 open")
    misuse = _cli(deployment, "quarantine", "replay")
    assert misuse.returncode == 2
    assert "give one quarantined record id, or --all" in misuse.stderr
    assert "Traceback" not in misuse.stderr

    parse_failures = sum(int(line.split()[0]) for line in groups if line.split()[3] == "parse")
    assert parse_failures > 0
    # the operator opens records until one that failed parsing (that repair is what this loop shows)
    for record_id in list(ids):
        shown = _cli(deployment, "quarantine", "show", str(record_id))
        assert shown.returncode == 0
        if "reason:    parse" in shown.stdout:
            ids.remove(record_id)
            ids.insert(0, record_id)
            break
    payload = shown.stdout.split("payload:\n", 1)[1].rstrip("\n")
    segments = payload.replace("\n", "\r").split("\r")
    repaired = "\r".join(s if len(s) < 4 or s[3] == "|" else f"{s[:3]}|{s[3:]}" for s in segments)
    fixed = deployment[0].parent / "fixed.hl7"
    fixed.write_text(repaired)

    still_broken = _cli(deployment, "quarantine", "replay", str(ids[0]))
    assert still_broken.returncode == 1
    assert "still failing" in still_broken.stdout
    replayed = _cli(deployment, "quarantine", "replay", str(ids[0]), "--payload-file", str(fixed))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "resolved" in replayed.stdout
    # the rest are broken the same way: replaying them all with unchanged mappings resolves none
    again = _cli(deployment, "quarantine", "replay", "--all", "--adapter", "rbk", "--reason", "parse")
    assert again.returncode == 1
    rest = parse_failures - 1
    assert f"replayed {rest} quarantined records: 0 resolved, {rest} still failing" in again.stdout
    for other in ids[1:]:
        assert _cli(deployment, "quarantine", "resolve", str(other)).returncode == 0
    assert _cli(deployment, "quarantine", "list").stdout.startswith("0 open quarantined records\n")
    assert _cli(deployment, "quarantine", "resolve", str(ids[0])).returncode == 2  # already resolved

    remapped = _cli(deployment, "remap", "--adapter", "rl4")
    assert remapped.returncode == 0, remapped.stderr
    assert re.search(r"rl4: remapped [1-9]\d* landed records into [1-9]\d* resources; 0 failed", remapped.stdout)
