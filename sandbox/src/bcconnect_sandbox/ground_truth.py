"""The ground-truth linkage file: every source patient record and the true person behind it."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final, TextIO

from bcconnect_sandbox.population import person_id
from bcconnect_sandbox.sources import SourcePatient
from bcconnect_sandbox.state import TrustState

HEADER: Final = ("ods_code", "source_patient_id", "person_id", "noise")


def noise_of(patient: SourcePatient) -> str:
    """The ground truth's ``noise`` column: the record's noise categories, ``;``-separated (empty: clean)."""
    return ";".join(patient.noise)


def ground_truth_rows(states: Sequence[TrustState], *, persons: int) -> Iterator[tuple[str, str, str, str]]:
    """``(ods_code, source_patient_id, person_id, noise)`` for every patient record.

    Person order first (each person's trusts in settings order, as ``generate`` writes them), then the records
    registered after time moved. Each person is computed once, whatever the number of trusts.
    """
    for index in range(persons):
        for state in states:
            for record in state.base_records(index):
                if isinstance(record.fact, SourcePatient):
                    yield state.trust, record.id, person_id(index), noise_of(record.fact)
    for state in states:
        for version in state.history("patient", state.first_change_tick):
            added = version.record
            # version 1 of an overlay record is a registration after the start (later versions are changes)
            if added is not None and version.version == 1 and isinstance(added.fact, SourcePatient):
                yield state.trust, added.id, person_id(added.fact.person_index), noise_of(added.fact)


def write_rows(out: TextIO, rows: Iterable[tuple[str, ...]]) -> int:
    """Write the CSV header and ``rows``; returns how many rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    n = 0
    for row in rows:
        writer.writerow(row)
        n += 1
    return n


def write_ground_truth(path: Path, states: Sequence[TrustState], *, persons: int) -> int:
    """Write ``ground_truth.csv`` at ``path``; returns the number of rows."""
    with path.open("w", encoding="utf-8", newline="") as out:
        return write_rows(out, ground_truth_rows(states, persons=persons))
