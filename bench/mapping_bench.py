"""Benchmark: map + validate throughput per resource type on the sandbox mix, fast vs full validation.

    .venv/bin/python bench/mapping_bench.py [--persons 2000] [--seed 7] [--out bench/results/mapping.md]

Generates a synthetic world with the sandbox generator (all four trusts), loads every record into memory,
then maps each record with its trust's mapping set twice: with the shape-cached validator (the default) and
with full fhir.resources validation of every resource (the baseline). A third column times
``model_validate`` alone on the produced resources. One process, one core; CPU time (``process_time``), best
of ``--repeat`` runs, because the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import orjson

from bcconnect.hl7v2 import parse_message
from bcconnect.mapping import MappingContext, MappingSet, load_mapping_set
from bcconnect_sandbox.generate import generate_to_directory
from bcconnect_sandbox.settings import SandboxSettings

SETS = {"RL4": "rl4-fhir", "RXK": "rxk-fhir", "RNA": "rna-json", "RBK": "rbk-hl7v2"}
SYSTEMS = {
    "RL4": "https://fhir.rl4.nhs.uk",
    "RXK": "https://fhir.rxk.nhs.uk",
    "RNA": "https://api.rna.nhs.uk",
    "RBK": "https://hl7.rbk.nhs.uk",
}
Record = tuple[str, str, str, bytes]  # trust, record type, source key, payload


def load_records(world: Path) -> list[Record]:
    """Every record of the generated world, as the adapters would hand them over."""
    out: list[Record] = []
    for trust in ("RL4", "RXK"):
        for path in sorted((world / trust).glob("*.ndjson")):
            for line in path.read_bytes().splitlines():
                doc = orjson.loads(line)
                out.append((trust, doc["resourceType"], f"{doc['resourceType']}/{doc['id']}", line))
    for line in (world / "RNA" / "changes.ndjson").read_bytes().splitlines():
        change = orjson.loads(line)
        if change.get("op") == "upsert":
            out.append(("RNA", change["entity"], f"{change['entity']}/{change['id']}", orjson.dumps(change["data"])))
    for raw in (world / "RBK" / "messages.hl7").read_bytes().split(b"\n"):
        if raw.strip():
            message = parse_message(raw)
            out.append(("RBK", message.message_type, f"RBK|{message.control_id}", raw))
    return out


def run(records: list[Record], sets: dict[str, MappingSet]) -> tuple[dict[str, float], dict[str, int], float, int]:
    """Seconds and resource counts per produced resource type (a record's time is split over its resources)."""
    seconds: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    clock = time.process_time
    start_all = clock()
    total = 0
    for trust, record_type, key, payload in records:
        context = MappingContext(trust, SYSTEMS[trust], key, "2026-11-22T10:00:00Z")
        start = clock()
        resources = sets[trust].map(record_type, payload, context=context).resources
        elapsed = clock() - start
        for resource in resources:
            seconds[resource["resourceType"]] += elapsed / len(resources)
            counts[resource["resourceType"]] += 1
        total += len(resources)
    return seconds, counts, clock() - start_all, total


def model_validate_alone(
    records: list[Record], sets: dict[str, MappingSet]
) -> tuple[dict[str, float], dict[str, int], float, int]:
    """fhir.resources ``model_validate`` on every produced resource, nothing else (the bare baseline)."""
    from bcconnect.mapping.validation import full_model_problems

    produced = [
        resource
        for trust, record_type, key, payload in records
        for resource in sets[trust]
        .map(record_type, payload, context=MappingContext(trust, SYSTEMS[trust], key, "2026-11-22T10:00:00Z"))
        .resources
    ]
    seconds: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    clock = time.process_time
    start_all = clock()
    for resource in produced:
        start = clock()
        full_model_problems(resource)
        seconds[resource["resourceType"]] += clock() - start
        counts[resource["resourceType"]] += 1
    return seconds, counts, clock() - start_all, len(produced)


def hl7_parse_seconds(records: list[Record]) -> float:
    """CPU seconds spent parsing the RBK messages alone."""
    start = time.process_time()
    for trust, _, _, payload in records:
        if trust == "RBK":
            parse_message(payload)
    return time.process_time() - start


def trust_rates(records: list[Record], sets: dict[str, MappingSet]) -> dict[str, float]:
    """Resources per second for each trust's records on their own."""
    out: dict[str, float] = {}
    for trust in SETS:
        _, _, seconds, total = run([r for r in records if r[0] == trust], sets)
        out[trust] = total / seconds
    return out


def cpu_model() -> str:
    """The CPU model name (Linux), or the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    """Run the benchmark and write the Markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("bench/results/mapping.md"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--density", type=float, default=1.0, help="sandbox record density (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate_to_directory(SandboxSettings(persons=args.persons, seed=args.seed, density=args.density), Path(tmp))
        records = load_records(Path(tmp))
    fast_sets = {t: load_mapping_set(Path("mappings") / s) for t, s in SETS.items()}
    full_sets = {t: load_mapping_set(Path("mappings") / s, fast_validation=False) for t, s in SETS.items()}
    run(records, fast_sets)  # warm-up: imports, and every shape of this world seen once
    shapes = sum(ms.validator.full_validations for ms in fast_sets.values())
    fast = min((run(records, fast_sets) for _ in range(args.repeat)), key=lambda r: r[2])
    full = run(records, full_sets)
    alone = model_validate_alone(records, fast_sets)
    parse_seconds = hl7_parse_seconds(records)
    lines = [
        "# Mapping + validation throughput",
        "",
        f"Command: `.venv/bin/python bench/mapping_bench.py --persons {args.persons} --seed {args.seed}"
        f" --density {args.density:g}` (sandbox record density {args.density:g})",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores shared with other users (load average"
        f" {os.getloadavg()[0]:.1f} at the end), Python {platform.python_version()}; one process, CPU time,"
        f" best of {args.repeat} runs for the fast column.",
        f"Input: the sandbox mix of all four trusts — {len(records)} records → {fast[3]} resources.",
        "",
        "| resource type | resources | map + fast validation (res/s) | map + full fhir.resources (res/s) |"
        " fhir.resources `model_validate` alone (res/s) | speed-up vs full |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for rtype in sorted(fast[1], key=lambda t: -fast[1][t]):
        f_rate = fast[1][rtype] / fast[0][rtype]
        b_rate = full[1][rtype] / full[0][rtype]
        a_rate = alone[1][rtype] / alone[0][rtype]
        lines.append(
            f"| {rtype} | {fast[1][rtype]} | {f_rate:,.0f} | {b_rate:,.0f} | {a_rate:,.0f} | {f_rate / b_rate:.1f}× |"
        )
    f_all, b_all, a_all = fast[3] / fast[2], full[3] / full[2], alone[3] / alone[2]
    lines.append(f"| **all** | {fast[3]} | **{f_all:,.0f}** | {b_all:,.0f} | {a_all:,.0f} | {f_all / b_all:.1f}× |")
    per_trust = ", ".join(f"{t} {rate:,.0f}/s" for t, rate in trust_rates(records, fast_sets).items())
    lines += [
        "",
        f"Per trust (map + fast validation, records of that trust only): {per_trust}.",
        f"HL7 v2 parsing (`bcconnect.hl7v2.parse_message`) takes {parse_seconds:.2f} s of the fast run's"
        f" {fast[2]:.2f} s; without it the mix maps at {fast[3] / (fast[2] - parse_seconds):,.0f} resources/s.",
        "",
        f"Fast path: each new output shape (element names, list lengths, value types) is validated once with"
        f" fhir.resources ({shapes} shapes for this world), then only primitive values are checked, each with"
        " the model's own pydantic validator (values seen valid are memoised). All columns except `model_validate`"
        " alone include parsing, mapping, terminology, security labels and the UK Core rules; a record's time is"
        " split evenly over the resources it produced. `tests/unit/mapping/test_validation_differential.py`"
        " checks that the fast path accepts and rejects exactly what fhir.resources does.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
