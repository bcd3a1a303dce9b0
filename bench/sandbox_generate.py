"""Benchmark ``generate_to_directory``: wall time, persons per second and peak RSS, each size in a fresh process.

Usage: ``python bench/sandbox_generate.py [N ...] [--out DIR] [--density D]`` (default sizes 10000). Each size
runs in a child process so its peak RSS (``ru_maxrss`` of the child) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys, time
from pathlib import Path
from bcconnect_sandbox import SandboxSettings, generate_to_directory
n, out, density = int(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
started = time.perf_counter()
manifest = generate_to_directory(SandboxSettings(persons=n, seed=1, density=density), out)
print(time.perf_counter() - started)
"""


def run(persons: int, out: Path, density: float) -> dict[str, float]:
    """Generate ``persons`` into ``out`` in a child process; returns seconds, rate, peak RSS and output size."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(persons), str(out), str(density)], check=True, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {
        "persons": persons,
        "density": density,
        "generate_seconds": round(float(result.stdout.strip()), 2),
        "wall_seconds": round(wall, 2),
        "persons_per_second": round(persons / float(result.stdout), 1),
        "peak_rss_mib": round(max(peak_kib, before) / 1024, 1),
        "output_mib": round(size / 2**20, 1),
    }


def main() -> None:
    """Run the sizes given on the command line and print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000])
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: a temporary directory)")
    parser.add_argument("--density", type=float, default=1.0, help="sandbox record density (default 1)")
    args = parser.parse_args()
    for n in args.sizes:
        out = (args.out or Path(tempfile.mkdtemp(prefix="sandbox-bench-"))) / f"n{n}"
        try:
            print(json.dumps(run(n, out, args.density)), flush=True)
        finally:
            if args.out is None:
                shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
