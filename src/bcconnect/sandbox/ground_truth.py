"""The ground-truth linkage file: every source patient record and the true person behind it."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Final, TextIO

from bcconnect.sandbox.population import person_id
from bcconnect.sandbox.sources import SourcePatient
from bcconnect.sandbox.state import TrustState

HEADER: Final = ("ods_code", "source_patient_id", "person_id")


def ground_truth_rows(states: Iterable[TrustState], *, persons: int) -> Iterable[tuple[str, str, str]]:
    """``(ods_code, source_patient_id, person_id)`` for every patient record (base and added), by trust."""
    for state in states:
        for version in state.history("patient", 0):
            record = version.record
            # version 1 is a record's first appearance (base or added later): constant memory at any size
            if record is None or version.version != 1 or not isinstance(record.fact, SourcePatient):
                continue
            yield state.trust, record.id, person_id(record.fact.person_index)


def write_rows(out: TextIO, rows: Iterable[tuple[str, str, str]]) -> int:
    """Write the CSV header and ``rows``; returns how many rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    n = 0
    for row in rows:
        writer.writerow(row)
        n += 1
    return n


def write_ground_truth(path: Path, states: Iterable[TrustState], *, persons: int) -> int:
    """Write ``ground_truth.csv`` at ``path``; returns the number of rows."""
    with path.open("w", encoding="utf-8", newline="") as out:
        return write_rows(out, ground_truth_rows(states, persons=persons))
