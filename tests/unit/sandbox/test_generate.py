"""Generated files: byte-identical for the same seed, different for another, with a complete ground truth."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from bcconnect_sandbox import SandboxSettings, World, generate_to_directory


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    """Two runs with equal settings write the same bytes; another seed writes other bytes."""
    settings = SandboxSettings(density=0, persons=300, seed=21)
    generate_to_directory(settings, tmp_path / "a")
    generate_to_directory(settings, tmp_path / "b")
    generate_to_directory(SandboxSettings(density=0, persons=300, seed=22), tmp_path / "c")
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    assert a["ground_truth.csv"] != c["ground_truth.csv"]
    assert {
        "manifest.json",
        "RL4/Patient.ndjson",
        "RXK/Patient.ndjson",
        "RNA/changes.ndjson",
        "RBK/messages.hl7",
    } <= a.keys()


def test_ground_truth_covers_every_source_patient(tmp_path: Path) -> None:
    """Every patient in every trust's files has one ground-truth row; duplicates share a person."""
    generate_to_directory(SandboxSettings(density=0, persons=400, seed=3), tmp_path)
    with (tmp_path / "ground_truth.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["ods_code", "source_patient_id", "person_id", "noise"]
    truth = {(r["ods_code"], r["source_patient_id"]): r["person_id"] for r in rows}
    assert len(truth) == len(rows)
    rl4 = (tmp_path / "RL4" / "Patient.ndjson").read_text().splitlines()
    assert {k[1] for k in truth if k[0] == "RL4"} == {line.split('"id":"')[1].split('"')[0] for line in rl4}
    persons_per_trust: dict[str, set[str]] = {}
    for (ods, _), person in truth.items():
        persons_per_trust.setdefault(ods, set()).add(person)
    assert sum(1 for (ods, _) in truth if ods == "RBK") > len(persons_per_trust["RBK"])  # some duplicates


def test_served_ground_truth_matches_the_generated_file(tmp_path: Path) -> None:
    """Before time moves, the world's ground truth is row for row the one ``generate`` writes."""
    settings = SandboxSettings(density=0, persons=150, seed=5)
    generate_to_directory(settings, tmp_path / "gen")
    world = World(settings, hl7_target=None, hl7_drop_dir=None)
    world.write_ground_truth(tmp_path / "served.csv")
    assert (tmp_path / "served.csv").read_bytes() == (tmp_path / "gen" / "ground_truth.csv").read_bytes()
