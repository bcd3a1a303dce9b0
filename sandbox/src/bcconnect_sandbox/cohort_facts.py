"""Population-health facts for cohorts: more long-term conditions, repeat A&E attenders, duplicated stays.

Drawn from a random stream of their own (``"{seed}:{index}:cohorts"``) after the rest of a person, so adding
them leaves every other draw (identity, referrals, observations) exactly as it was. What it adds:

- **stroke/TIA and serious mental illness**, which the base list lacks, with age-shaped prevalence (stroke/TIA
  rising steeply after 65, SMI about 1% of adults);
- **repeat A&E attenders**: about 0.6% of people have 5–14 A&E attendances (class EMER) in the last 12 months
  and about 2% have 2–4, on top of the occasional attendance everyone may have;
- **the same emergency stay sent by two trusts** (about one stay in ten of people known to two or more trusts):
  the second trust's record starts within three hours and ends within six hours of the first, so the periods
  overlap; it is one admission, not two;
- and it removes what cannot happen: two *different* emergency stays (or A&E attendances) of one person whose
  periods overlap are not two events, so the later one is dropped before duplicates are added.

``cohort_truth`` (the row written to ``cohort_truth.csv``) says per person which listed conditions they have,
each distinct emergency admission (start, end, trusts that sent it) and each A&E attendance, as the trusts
actually send them (records past a person's per-trust record budget are not sent, so not counted).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

from bcconnect_sandbox import reference as ref
from bcconnect_sandbox.population import Condition, Encounter, Person
from bcconnect_sandbox.sources import Record, SourcePatient

STROKE: Final = ref.Concept("230690007", "Cerebrovascular accident")
TIA: Final = ref.Concept("266257000", "Transient ischemic attack")
SCHIZOPHRENIA: Final = ref.Concept("58214004", "Schizophrenia")
BIPOLAR: Final = ref.Concept("13746004", "Bipolar disorder")

#: (upper age, probability) of a stroke or TIA on record
_STROKE_BY_AGE: Final = ((40, 0.0), (55, 0.02), (65, 0.045), (75, 0.10), (200, 0.18))
_SMI_ADULT: Final = 0.012
#: of everyone: heavy repeat attenders (5–14 in 12 months) and light ones (2–4)
_HEAVY_ATTENDER: Final = 0.006
_LIGHT_ATTENDER: Final = 0.02
#: of emergency stays of people known to two or more trusts: also sent by a second trust
_DUPLICATE_STAY: Final = 0.10


def add_cohort_facts(seed: int, person: Person, now: datetime) -> Person:
    """``person`` with the cohort facts above (a pure function of seed, person and now)."""
    rng = random.Random(f"{seed}:{person.index}:cohorts")
    age = (now.date() - person.birth_date).days // 365
    conditions = list(person.conditions)
    home = person.trusts[0]
    stroke_chance = next(p for limit, p in _STROKE_BY_AGE if age < limit)
    if rng.random() < stroke_chance:
        conditions.append(Condition(rng.choice((STROKE, STROKE, TIA)), home, _onset(rng, now, age)))
    if age >= 18 and rng.random() < _SMI_ADULT:
        conditions.append(Condition(rng.choice((SCHIZOPHRENIA, BIPOLAR)), home, _onset(rng, now, age)))
    encounters = _without_overlaps(list(person.encounters))
    roll = rng.random()
    extra = (
        rng.randint(5, 14)
        if roll < _HEAVY_ATTENDER
        else rng.randint(2, 4)
        if roll < _HEAVY_ATTENDER + _LIGHT_ATTENDER
        else 0
    )
    for _ in range(extra):
        start = now - timedelta(days=rng.randint(1, 364), minutes=rng.randint(0, 20 * 60))
        trust = home if rng.random() < 0.7 or len(person.trusts) == 1 else rng.choice(person.trusts[1:])
        candidate = Encounter("ae", trust, start, start + timedelta(hours=rng.randint(2, 6)))
        if not any(_overlaps(candidate, e) for e in encounters if e.kind == "ae"):
            encounters.append(candidate)
    if len(person.trusts) > 1:
        for stay in [e for e in encounters if e.kind == "emergency"]:
            if rng.random() < _DUPLICATE_STAY:
                other = rng.choice([t for t in person.trusts if t != stay.trust])
                start = stay.start + timedelta(minutes=rng.randint(-180, 180))
                end = max(stay.end + timedelta(minutes=rng.randint(-360, 360)), start + timedelta(hours=1))
                copy = replace(stay, trust=other, start=start, end=min(end, now))
                # the copy must touch only its own stay, or it would join two real stays into one
                if copy.end > copy.start and not any(
                    e is not stay and e.kind == "emergency" and _overlaps(e, copy) for e in encounters
                ):
                    encounters.append(copy)
    return replace(person, conditions=tuple(conditions), encounters=tuple(sorted(encounters, key=lambda e: e.start)))


def _onset(rng: random.Random, now: datetime, age: int) -> date:
    return (now - timedelta(days=rng.randint(30, max(31, min(age, 15) * 365)))).date()


def _overlaps(a: Encounter, b: Encounter) -> bool:
    return a.start < b.end and b.start < a.end


def _without_overlaps(encounters: list[Encounter]) -> list[Encounter]:
    """Drop a stay (or A&E attendance) that overlaps an earlier one of the same kind: one person, one bed."""
    kept: list[Encounter] = []
    for enc in sorted(encounters, key=lambda e: e.start):
        if enc.kind in ("emergency", "ae") and any(k.kind == enc.kind and _overlaps(k, enc) for k in kept):
            continue
        kept.append(enc)
    return kept


def is_duplicate_stay(stay: Encounter, earlier: list[Encounter]) -> bool:
    """Whether ``stay`` is another trust's record of a stay already in ``earlier`` (overlapping period)."""
    return any(e.kind == stay.kind and _overlaps(e, stay) for e in earlier)


def within_year(moment: datetime, now: datetime) -> bool:
    """In the 12 months up to ``now``: after ``now`` minus one calendar year, not after ``now``."""
    try:
        edge = now.replace(year=now.year - 1)
    except ValueError:  # 29 February
        edge = now.replace(year=now.year - 1, day=28)
    return edge < moment <= now


COHORT_TRUTH_HEADER: Final = (
    "person_id",
    "nhs_number",
    "birth_date",
    "borough",
    "postcode",
    "practice",
    "objects",
    "condition_codes",
    "emergency_admissions",
    "ae_attendances",
)


def _clusters(encounters: list[Encounter]) -> list[list[Encounter]]:
    """Records of one kind grouped into real events: overlapping periods are one event (sent by several)."""
    groups: list[list[Encounter]] = []
    for enc in sorted(encounters, key=lambda e: e.start):
        if groups and any(_overlaps(e, enc) for e in groups[-1]):
            groups[-1].append(enc)
        else:
            groups.append([enc])
    return groups


def cohort_truth_row(person: Person, sent: Mapping[str, Sequence[Record]]) -> tuple[str, ...]:
    """The ``cohort_truth.csv`` row of ``person`` from the records each trust actually sends.

    ``emergency_admissions``: ``start/end/TRUST+TRUST`` per distinct stay (the trusts that sent it);
    ``ae_attendances``: ``start/TRUST`` per attendance; times are UTC ISO instants; lists use ``;``.
    """
    codes: set[str] = set()
    stays: list[Encounter] = []
    attendances: list[Encounter] = []
    objects = False
    for trust, records in sent.items():
        for record in records:
            fact = record.fact
            # the objection reaches the engine as RL4's GP Consent or as the flag on RNA's patient record
            if record.kind == "consent" or (
                trust == "RNA" and isinstance(fact, SourcePatient) and fact.objects_to_sharing
            ):
                objects = True
            elif record.kind == "condition" and isinstance(fact, Condition):
                codes.add(fact.concept.code)
            elif record.kind == "encounter" and isinstance(fact, Encounter):
                if fact.kind == "emergency":
                    stays.append(fact)
                elif fact.kind == "ae":
                    attendances.append(fact)
    admissions = [
        f"{_utc(g[0].start)}/{_utc(max(e.end for e in g))}/{'+'.join(sorted({e.trust for e in g}))}"
        for g in _clusters(stays)
    ]
    visits = [f"{_utc(g[0].start)}/{'+'.join(sorted({e.trust for e in g}))}" for g in _clusters(attendances)]
    return (
        person.person_id,
        person.nhs_number or "",
        person.birth_date.isoformat(),
        person.borough,
        person.postcode,
        person.gp_practice.code,
        "1" if objects else "0",
        ";".join(sorted(codes)),
        ";".join(admissions),
        ";".join(visits),
    )


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_cohort_truth(path: Path, rows: Iterable[tuple[str, ...]]) -> int:
    """Write ``cohort_truth.csv``; returns the number of persons written."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COHORT_TRUTH_HEADER)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


__all__ = [
    "BIPOLAR",
    "COHORT_TRUTH_HEADER",
    "SCHIZOPHRENIA",
    "STROKE",
    "TIA",
    "add_cohort_facts",
    "cohort_truth_row",
    "is_duplicate_stay",
    "within_year",
    "write_cohort_truth",
]
