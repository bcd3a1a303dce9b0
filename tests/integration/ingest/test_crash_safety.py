"""Crash safety: a sync killed with SIGKILL at random moments, restarted each time, ends exactly like a clean run.

The sandboxes run in this process (a blocking portal thread); the sync runs as the real ``bcconnect`` command in a
child process, so SIGKILL hits it anywhere — mid-fetch, mid-mapping, mid-transaction. Each page is committed with
its cursor in one transaction, so every restart resumes after the last committed page; the final export (NDJSON
of every resource) must be byte-identical to that of one uninterrupted run into another store.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import anyio.from_thread
import pytest

from bcconnect.cli.demo_cmd import write_demo_config
from bcconnect_sandbox import FaultSettings, SandboxSettings, World, running_sandboxes
from support.sandbox_world import world_adapters

KILLS = int(os.environ.get("BCCONNECT_CRASH_KILLS", "20"))
BCCONNECT = [sys.executable, "-m", "bcconnect.cli.main"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Path]]:
    """The RL4 (FHIR) and RNA (vendor JSON) sandboxes serving one population, for the whole module."""
    drop = tmp_path_factory.mktemp("drop")
    # a little latency per request keeps each sync running for several seconds, so the kills land inside it
    faults = FaultSettings(seed=1, latency_ms=25)
    settings = SandboxSettings(density=0, persons=150, seed=11, trusts=("RL4", "RNA"), faults=faults)
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running_sandboxes(settings, hl7_drop_dir=drop)) as running,
    ):
        yield running, drop


def _setup(world: World, drop: Path, data_dir: Path) -> tuple[Path, dict[str, str]]:
    configs, environ = world_adapters(world, hl7_drop_dir=data_dir / "drop")
    # small pages: many commit points for the kills to land between and inside
    configs = [replace(c, fetch=replace(c.fetch, page_size=15)) for c in configs]
    config_path = write_demo_config(data_dir, port=8080, configs=configs, environ=environ)
    # each store gets its own copy of the HL7 files (the file-drop source moves what it committed)
    (data_dir / "drop").mkdir(exist_ok=True)
    for message in sorted(drop.glob("*.hl7")):
        (data_dir / "drop" / message.name).write_bytes(message.read_bytes())
    return config_path, {**os.environ, **environ, "BCCONNECT_LOGGING_FORMAT": "json"}


def _run(config: Path, env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BCCONNECT, "--config", str(config), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_random_sigkills_leave_the_same_store_as_a_clean_run(world: tuple[World, Path], tmp_path: Path) -> None:
    """Kill the sync at random moments; after a final uninterrupted run, the export equals a clean run's."""
    running, drop = world
    clean_cfg, clean_env = _setup(running, drop, tmp_path / "clean")
    crash_cfg, crash_env = _setup(running, drop, tmp_path / "crash")

    clean = _run(clean_cfg, clean_env, "sync")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    rng = random.Random(20261122)
    kills_that_hit = 0
    for _ in range(KILLS):
        child = subprocess.Popen(
            [*BCCONNECT, "--config", str(crash_cfg), "sync"],
            env=crash_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            child.wait(timeout=rng.uniform(0.9, 3.5))  # the moment to strike (import takes ~1 s)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()
            kills_that_hit += 1
    final = _run(crash_cfg, crash_env, "sync")
    assert final.returncode == 0, final.stdout + final.stderr
    assert kills_that_hit >= KILLS // 2, "most kills should land while the sync is still running"

    clean_out, crash_out = tmp_path / "clean-export", tmp_path / "crash-export"
    assert _run(clean_cfg, clean_env, "export", "--out", str(clean_out)).returncode == 0
    assert _run(crash_cfg, crash_env, "export", "--out", str(crash_out)).returncode == 0
    clean_files = sorted(p.name for p in clean_out.iterdir())
    assert clean_files == sorted(p.name for p in crash_out.iterdir())
    assert "Patient.ndjson" in clean_files
    for name in clean_files:
        assert (clean_out / name).read_bytes() == (crash_out / name).read_bytes(), name
