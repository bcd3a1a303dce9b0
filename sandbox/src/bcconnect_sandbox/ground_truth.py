"""Ground truth: every source patient record and the true person behind it (``ground_truth.csv``), and the
referral truth — each RTT pathway's true clock (``rtt_truth.csv``) and each referral's triage state
(``referral_truth.csv``) — for the engine's linkage, worklist and waiting list to be checked against."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Final, TextIO

from bcconnect_sandbox.population import Person, person_id
from bcconnect_sandbox.referrals import Referral
from bcconnect_sandbox.sources import SourcePatient
from bcconnect_sandbox.state import TrustState

HEADER: Final = ("ods_code", "source_patient_id", "person_id")


def ground_truth_rows(states: Sequence[TrustState], *, persons: int) -> Iterator[tuple[str, str, str]]:
    """``(ods_code, source_patient_id, person_id)`` for every patient record.

    Person order first (each person's trusts in settings order, as ``generate`` writes them), then the records
    registered after time moved. Each person is computed once, whatever the number of trusts.
    """
    for index in range(persons):
        for state in states:
            for record in state.base_records(index):
                if isinstance(record.fact, SourcePatient) and record.kind == "patient":
                    yield state.trust, record.id, person_id(index)
    for state in states:
        for version in state.history("patient", state.first_change_tick):
            added = version.record
            # version 1 of an overlay record is a registration after the start (later versions are changes)
            if (
                added is not None
                and version.version == 1
                and added.kind == "patient"
                and isinstance(added.fact, SourcePatient)
            ):
                yield state.trust, added.id, person_id(added.fact.person_index)


def write_rows(out: TextIO, rows: Iterable[tuple[str, str, str]]) -> int:
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


#: one row per RTT pathway (patient pathway identifier): where it is now and its true clock at the reference date
RTT_HEADER: Final = (
    "person_id",
    "ppi",
    "ods_code",
    "network",
    "tfc",
    "priority",
    "clock_start",
    "clock_stop",
    "stop_code",
    "open",
    "days_waited",
    "weeks_waited",
    "next_activity",
    "age",
    "transferred",
    "objects",
    "reference_date",
)
#: one row per referral (UBRN) at each provider: its triage state and the duplicate it repeats, if any
REFERRAL_HEADER: Final = (
    "person_id",
    "ubrn",
    "ppi",
    "ods_code",
    "network",
    "priority",
    "received",
    "triage",
    "open",
    "duplicate_of",
    "objects",
)


def _age(person: Person, at: date) -> int:
    born = person.birth_date
    return at.year - born.year - ((at.month, at.day) < (born.month, born.day))


def rtt_rows(person: Person, *, reference: date) -> Iterator[tuple[str, ...]]:
    """The true RTT pathways of ``person``: the clock the generator decided, counted at ``reference``."""
    by_ppi: dict[str, list[Referral]] = {}
    for referral in person.referrals:
        if referral.network.tfc is None or referral.triage == "returned":
            continue  # non-RTT services and referrals sent back to the GP have no pathway
        by_ppi.setdefault(referral.ppi, []).append(referral)
    for ppi, chain in by_ppi.items():
        current = chain[-1]  # an onward referral comes after the one it continues
        start = current.clock_start or current.received or current.authored
        stop = current.clock_stop
        days = ((stop or reference) - start).days
        yield (
            person.person_id,
            ppi,
            current.trust,
            current.network.name,
            current.network.tfc or "",
            current.priority,
            start.isoformat(),
            stop.isoformat() if stop else "",
            current.stop_code or "",
            "Y" if stop is None else "N",
            str(days),
            str(days // 7),
            current.next_activity.isoformat() if current.next_activity else "",
            str(_age(person, reference)),
            "Y" if len(chain) > 1 else "N",
            "Y" if person.objects_to_sharing else "N",
            reference.isoformat(),
        )


def referral_rows(person: Person) -> Iterator[tuple[str, ...]]:
    """Every referral of ``person`` at each provider."""
    for r in person.referrals:
        yield (
            person.person_id,
            r.ubrn,
            r.ppi,
            r.trust,
            r.network.name,
            r.priority,
            (r.received or r.authored).isoformat(),
            r.triage,
            "Y" if r.open else "N",
            r.duplicate_of or "",
            "Y" if person.objects_to_sharing else "N",
        )


def write_referral_truth(directory: Path, people: Iterable[Person], *, reference: date) -> tuple[int, int]:
    """Write ``rtt_truth.csv`` and ``referral_truth.csv`` in ``directory``; returns their row counts."""
    pathways = referrals = 0
    with (
        (directory / "rtt_truth.csv").open("w", encoding="utf-8", newline="") as rtt_out,
        (directory / "referral_truth.csv").open("w", encoding="utf-8", newline="") as ref_out,
    ):
        rtt, refs = csv.writer(rtt_out, lineterminator="\n"), csv.writer(ref_out, lineterminator="\n")
        rtt.writerow(RTT_HEADER)
        refs.writerow(REFERRAL_HEADER)
        for person in people:
            for row in rtt_rows(person, reference=reference):
                rtt.writerow(row)
                pathways += 1
            for row in referral_rows(person):
                refs.writerow(row)
                referrals += 1
    return pathways, referrals
