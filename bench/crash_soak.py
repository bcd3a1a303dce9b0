"""Crash soak: the crash-safety test with many more SIGKILLs than CI runs (default 200).

    .venv/bin/python bench/crash_soak.py --kills 200

Each kill lands at a random moment of a real ``bcconnect sync``; after a final uninterrupted run the export
must equal a clean run's byte for byte. Appends the outcome to ``bench/results/crash.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "crash.md")
    args = parser.parse_args()
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--timeout",
            "0",
            "tests/integration/ingest/test_crash_safety.py",
        ],
        cwd=ROOT,
        env={**os.environ, "BCCONNECT_CRASH_KILLS": str(args.kills)},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    verdict = "identical to the clean run" if result.returncode == 0 else "FAILED"
    print(result.stdout[-2000:])
    line = (
        f"| {time.strftime('%Y-%m-%d')} | {platform.machine()}, {os.cpu_count()} cores | {args.kills} |"
        f" {seconds:.0f} | {verdict} |"
    )
    if not args.out.exists():
        args.out.write_text(
            "# Crash soak\n\nCommand: `.venv/bin/python bench/crash_soak.py --kills N`\n\n"
            "| date | machine | SIGKILLs | seconds | final export |\n| --- | --- | ---: | ---: | --- |\n"
        )
    with args.out.open("a") as handle:
        handle.write(line + "\n")
    print(line)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
