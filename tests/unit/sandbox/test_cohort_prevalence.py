"""The sandbox's population has the region's cohort prevalence (seed 9: not one the rates were tuned on).

"About 10 per cent of our population has three or more co-morbidities and 1 per cent have had 3 or more
emergency admissions in the last 12 months": the bands are 7.5–12.5% and 0.5–1.6%. Counted from
``cohort_truth.csv`` rows as the trusts send them (distinct stays, listed conditions only).
"""

from __future__ import annotations

from datetime import datetime

from bcconnect_sandbox import SandboxSettings
from bcconnect_sandbox.cohort_facts import cohort_truth_row
from bcconnect_sandbox.sources import IdCodec, trust_records
from bcconnect_sandbox.state import dense_person

#: the listed long-term conditions the sandbox sends, by SNOMED code (cancer sites are one condition)
LISTED = {
    "38341003": "hypertension", "44054006": "diabetes", "195967001": "asthma", "35489007": "depression",
    "13645005": "copd", "433144002": "ckd", "84114007": "heart_failure", "49436004": "af",
    "414545008": "chd", "52448006": "dementia", "254837009": "cancer", "363406005": "cancer",
    "399068003": "cancer", "363358000": "cancer", "230690007": "stroke_tia", "266257000": "stroke_tia",
    "58214004": "smi", "13746004": "smi",
}  # fmt: skip
PERSONS = 12_000


def test_three_plus_conditions_and_three_plus_emergency_admissions_fall_in_the_regions_bands() -> None:
    """Multimorbidity 7.5–12.5%; 3+ emergency admissions in 12 months 0.5–1.6%; a tail of repeat attenders."""
    settings = SandboxSettings(persons=PERSONS, seed=9)
    codecs = {t: IdCodec(settings.seed, t) for t in settings.trusts}
    now = settings.now
    edge = now.replace(year=now.year - 1)
    multimorbid = frequent = repeat_attenders = sent_twice = 0
    for index in range(PERSONS):
        person = dense_person(settings, index)
        sent = {
            t: trust_records(person, t, seed=settings.seed, noise=settings.noise, codec=codecs[t])[
                : settings.ticks_per_person - 1
            ]
            for t in settings.trusts
        }
        row = cohort_truth_row(person, sent)
        conditions = {LISTED[c] for c in row[7].split(";") if c in LISTED}
        stays = [s for s in row[8].split(";") if s]
        visits = [v for v in row[9].split(";") if v]

        def recent(items: list[str]) -> int:
            return sum(1 for i in items if edge < datetime.fromisoformat(i.split("/")[0].replace("Z", "+00:00")) <= now)

        multimorbid += len(conditions) >= 3
        frequent += recent(stays) >= 3
        repeat_attenders += recent(visits) >= 5
        sent_twice += sum(1 for s in stays if "+" in s.split("/")[2])
    assert 0.075 <= multimorbid / PERSONS <= 0.125, multimorbid / PERSONS
    assert 0.005 <= frequent / PERSONS <= 0.016, frequent / PERSONS
    assert 0.002 <= repeat_attenders / PERSONS <= 0.02, repeat_attenders / PERSONS
    assert sent_twice >= 20, "stays sent by two trusts should be common enough to matter"
