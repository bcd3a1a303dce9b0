"""Sync throughput per dialect and end to end, into SQLite and PostgreSQL, with the sync's peak memory.

The four sandboxes run in this process (a portal thread); every measured sync is the real ``bcconnect sync``
command in a child process, so its wall time and peak RSS (from ``wait4``) are the engine's alone. Each case
runs on a fresh store ``--repeat`` times; the median is reported.

    .venv/bin/python bench/ingest_sync.py --persons 2000 --repeat 3 [--density 1] [--only all] [--postgres-url URL]

``--density`` is the sandbox's record density (1, the default: a shared-care-record-like ~150 resources a
person; 0: the sparse ~9 a person that the earlier figures were measured at).

Results are printed and written to ``bench/results/ingest.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import anyio.from_thread

from bcconnect.cli.demo_cmd import demo_adapters, write_demo_config
from bcconnect.config import AdapterConfig
from bcconnect_sandbox import SandboxSettings, World, running_sandboxes

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(\w+): fetched (\d+) = new (\d+)")


def _fresh_postgres(url: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


def _run_sync(
    world: World,
    drop: Path,
    configs: list[AdapterConfig],
    environ: dict[str, str],
    store_url: str,
    profile: Path | None = None,
) -> tuple[float, int, float, float]:
    """One sync of ``configs`` into a fresh store; returns (seconds, records, peak RSS MiB, CPU seconds).

    With ``profile``, the sync runs under the py-spy sampling profiler (every thread, 100 samples a second),
    which writes collapsed stacks there; the profiler's own process is not in the measured CPU or RSS."""
    work = Path(tempfile.mkdtemp(prefix="bcbench-"))
    try:
        local_drop = work / "drop"
        local_drop.mkdir()
        for message in drop.glob("*.hl7"):
            shutil.copy(message, local_drop / message.name)
        configs = [replace(c, hl7v2=replace(c.hl7v2, drop_dir=str(local_drop))) for c in configs]
        config = write_demo_config(work, port=8080, configs=configs, environ=environ)
        text = config.read_text().replace('url = "sqlite:///bcconnect.db"', f'url = "{store_url}"')
        config.write_text(text)
        env = {**os.environ, **environ, "BCCONNECT_LOGGING_LEVEL": "warning"}
        command = [sys.executable, "-m", "bcconnect.cli.main", "--config", str(config), "sync"]
        if profile is not None:
            spy = str(Path(sys.executable).with_name("py-spy"))
            command = [
                spy,
                "record",
                "--format",
                "raw",
                "--rate",
                "100",
                "--threads",
                "-o",
                str(profile),
                "--",
                *command,
            ]
        started = time.perf_counter()
        child = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        out = child.stdout.read() if child.stdout else ""
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"sync failed:\n{out}")
        fetched = sum(int(m.group(2)) for line in out.splitlines() if (m := LINE.match(line)))
        return seconds, fetched, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    finally:
        shutil.rmtree(work, ignore_errors=True)


def profile_summary(collapsed: Path, *, top: int = 25) -> list[str]:
    """The profile's top functions by own time and by inclusive time (share of busy samples), as Markdown.

    Idle samples (threads waiting in the event loop's selector, a queue or a lock) are left out, so shares are
    of the time the sync was doing something.
    """
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    busy = 0
    idle_marks = ("select (selectors.py", "wait (threading.py", "_worker (concurrent", "get (queue.py", "run (anyio")
    for line in collapsed.read_text(encoding="utf-8").splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f and not f.startswith("thread ") and not f.startswith("process ")]
        if not frames or any(frames[-1].startswith(mark) for mark in idle_marks):
            continue
        count = int(count_text)
        busy += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    lines = [f"{busy} busy samples", "", "| own % | function |", "| ---: | --- |"]
    lines += [f"| {n / busy:.1%} | `{f}` |" for f, n in sorted(own.items(), key=lambda x: -x[1])[:top]]
    lines += ["", "| inclusive % | function |", "| ---: | --- |"]
    lines += [f"| {n / busy:.1%} | `{f}` |" for f, n in sorted(inclusive.items(), key=lambda x: -x[1])[: top * 2]]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--density", type=float, default=1.0, help="sandbox record density (default 1)")
    parser.add_argument(
        "--only", choices=("all", "each"), default=None, help="only the four together, or only each on its own"
    )
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL even when a URL is known")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="profile each case with py-spy; stacks and summary here",
    )
    parser.add_argument("--postgres-url", default=os.environ.get("BCCONNECT_TEST_POSTGRES_URL"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest.md")
    args = parser.parse_args()

    drop = Path(tempfile.mkdtemp(prefix="bcbench-drop-"))
    rows: list[tuple[str, str, int, float, float, float, float]] = []
    settings = SandboxSettings(persons=args.persons, seed=args.seed, density=args.density)
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running_sandboxes(settings, hl7_drop_dir=drop)) as world,
    ):
        portal.call(world.deliver_hl7)
        configs, environ = demo_adapters(world, adapters_dir=ROOT / "adapters", hl7_drop_dir=drop)
        cases = [(c.name, [c]) for c in configs] * (args.only != "all") + [("all four (end to end)", configs)] * (
            args.only != "each"
        )
        backends = ["sqlite"] + (["postgresql"] if args.postgres_url and not args.sqlite_only else [])
        for backend in backends:
            for label, chosen in cases:
                runs = []
                for n in range(args.repeat):
                    url = "sqlite:///bcconnect.db" if backend == "sqlite" else _fresh_postgres(args.postgres_url)
                    stacks = None
                    if args.profile is not None:
                        args.profile.mkdir(parents=True, exist_ok=True)
                        stacks = args.profile / f"{backend}-{label.split()[0]}-{n}.txt"
                    runs.append(_run_sync(world, drop, chosen, environ, url, stacks))
                    if stacks is not None:
                        summary = "\n".join(profile_summary(stacks))
                        stacks.with_suffix(".md").write_text(summary + "\n", encoding="utf-8")
                        print(summary)
                seconds = statistics.median(r[0] for r in runs)
                fetched = runs[0][1]
                rss = statistics.median(r[2] for r in runs)
                cpu_rate = fetched / statistics.median(r[3] for r in runs)
                rows.append((backend, label, fetched, seconds, fetched / seconds, cpu_rate, rss))
                rate = fetched / seconds
                print(
                    f"{backend:10} {label:22} {fetched:7} records {seconds:6.2f} s {rate:7.0f}/s"
                    f" {cpu_rate:7.0f}/CPU-s {rss:6.0f} MiB"
                )
    shutil.rmtree(drop, ignore_errors=True)

    lines = [
        "# Ingest throughput",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" {platform.system()}.",
        f"Command: `.venv/bin/python bench/ingest_sync.py --persons {args.persons} --repeat {args.repeat}"
        f" --density {args.density:g}`" + (" --postgres-url …" if args.postgres_url else ""),
        f"Data density: {args.density:g} (sandbox `density`); load average at the end"
        f" {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        "",
        "Each row: the real `bcconnect sync` in a child process on a fresh store (median of the repeats), against"
        " the loopback sandboxes running in the parent process on the same 2 cores. Time includes process"
        " start-up (~1 s of imports). The sandboxes build each page on demand in the parent process and compete"
        " for the same cores, so the wall rate understates the engine: records per CPU-second counts only the"
        " sync process's own CPU time (user + system, start-up included). Peak RSS is the sync process's own.",
        "",
        "| backend | adapter | records | seconds (median) | records/s (wall) | records per CPU-second | peak RSS MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {b} | {label} | {n} | {s:.2f} | {rate:.0f} | {cpu:.0f} | {rss:.0f} |"
        for b, label, n, s, rate, cpu, rss in rows
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
