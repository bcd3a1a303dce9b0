"""Record density: what a shared-care-record patient really carries — years of vitals, lab panels, repeat
prescriptions and outpatient follow-up — on top of the person's sparse clinical story.

A person drawn by :mod:`bcconnect_sandbox.population` carries ~9 records (their conditions, the contacts
that matter for identity and triage, a few results). A real shared care record holds hundreds per person:
every clinic and ward contact leaves a set of observations, every blood draw a panel of results, every
month a repeat issue of each long-term medicine. :func:`densify` adds that history, shaped by age and by
conditions (older and multimorbid people are seen, bled and prescribed for far more often) and spread over
the trusts that saw the person.

``density`` scales it: ``0`` adds nothing (the sparse world every test fixture is built on, byte-identical
to a world without this module), ``1`` (the default of :class:`~bcconnect_sandbox.settings.SandboxSettings`)
gives ~100–400 resources per adult with a long-term condition and ~150 on average over the region's age mix,
``2`` doubles the rates. The draws come from their own generator seeded ``(seed, person, "density")``, so
the rest of the person (identity, conditions, referrals) is the same at every density.

Codes are LOINC for observables (as every result the sandbox already sends; the RXK and RNA concept maps
translate their local codes back to them) and dm+d for medicines.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from bcconnect_sandbox import reference as ref
from bcconnect_sandbox.population import Encounter, Medication, Observation, Person
from bcconnect_sandbox.settings import MAX_DENSITY

#: the default density: a shared-care-record-like record per person
REALISTIC: Final = 1.0
#: the sparse world of the identity and triage fixtures (nothing added)
SPARSE: Final = 0.0

Analyte = tuple[ref.Concept, tuple[float, float], str]

OBS_PULSE: Final = (ref.Concept("8867-4", "Heart rate"), (52.0, 104.0), "/min")
OBS_WEIGHT: Final = (ref.Concept("29463-7", "Body weight"), (48.0, 118.0), "kg")
OBS_SPO2: Final = (
    ref.Concept("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
    (92.0, 100.0),
    "%",
)
OBS_SODIUM: Final = (ref.Concept("2951-2", "Sodium [Moles/volume] in Serum or Plasma"), (133.0, 146.0), "mmol/L")
OBS_POTASSIUM: Final = (
    ref.Concept("2823-3", "Potassium [Moles/volume] in Serum or Plasma"),
    (3.4, 5.4),
    "mmol/L",
)
OBS_UREA: Final = (ref.Concept("22664-7", "Urea [Moles/volume] in Serum or Plasma"), (2.5, 9.5), "mmol/L")
OBS_CREATININE: Final = (
    ref.Concept("14682-9", "Creatinine [Moles/volume] in Serum or Plasma"),
    (55.0, 130.0),
    "umol/L",
)
OBS_ALT: Final = (
    ref.Concept("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma"),
    (8.0, 55.0),
    "U/L",
)
OBS_ALP: Final = (
    ref.Concept("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma"),
    (35.0, 140.0),
    "U/L",
)
OBS_BILIRUBIN: Final = (
    ref.Concept("14631-6", "Bilirubin.total [Moles/volume] in Serum or Plasma"),
    (3.0, 24.0),
    "umol/L",
)
OBS_ALBUMIN: Final = (ref.Concept("1751-7", "Albumin [Mass/volume] in Serum or Plasma"), (32.0, 50.0), "g/L")
OBS_CHOLESTEROL: Final = (
    ref.Concept("14647-2", "Cholesterol [Moles/volume] in Serum or Plasma"),
    (3.2, 7.4),
    "mmol/L",
)
OBS_HDL: Final = (ref.Concept("14646-4", "Cholesterol in HDL [Moles/volume] in Serum or Plasma"), (0.8, 2.2), "mmol/L")
OBS_LDL: Final = (ref.Concept("22748-8", "Cholesterol in LDL [Moles/volume] in Serum or Plasma"), (1.4, 5.0), "mmol/L")
OBS_TRIGLYCERIDE: Final = (
    ref.Concept("14927-8", "Triglyceride [Moles/volume] in Serum or Plasma"),
    (0.6, 3.4),
    "mmol/L",
)

#: observation kinds this module adds, with their analytes (one each for a vital sign, several for a panel)
ANALYTES: Final[dict[str, tuple[Analyte, ...]]] = {
    "pulse": (OBS_PULSE,),
    "weight": (OBS_WEIGHT,),
    "spo2": (OBS_SPO2,),
    "ue": (OBS_SODIUM, OBS_POTASSIUM, OBS_UREA, OBS_CREATININE, ref.OBS_EGFR),
    "lft": (OBS_ALT, OBS_ALP, OBS_BILIRUBIN, OBS_ALBUMIN),
    "lipids": (OBS_CHOLESTEROL, OBS_HDL, OBS_LDL, OBS_TRIGLYCERIDE),
}
#: result kinds that travel as a panel: one DiagnosticReport (ORU OBR) over one Observation per analyte
PANELS: Final = {
    "fbc": ref.FBC_PANEL,
    "ue": ref.Concept("24362-6", "Renal function 2000 panel - Serum or Plasma"),
    "lft": ref.Concept("24325-3", "Hepatic function 2000 panel - Serum or Plasma"),
    "lipids": ref.Concept("24331-1", "Lipid 1996 panel - Serum or Plasma"),
}
#: observation kinds categorised as vital signs (the rest are laboratory results)
VITAL_SIGNS: Final = frozenset({"bp", "bmi", "pulse", "weight", "spo2"})
#: RNA's own test codes and names for the added kinds (its concept map translates them to LOINC)
RNA_TESTS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "pulse": (("PULSE", "Pulse rate"),),
    "weight": (("WT", "Weight"),),
    "spo2": (("SPO2", "Oxygen saturation"),),
    "ue": (("NA", "Sodium"), ("K", "Potassium"), ("UREA", "Urea"), ("CREAT", "Creatinine"), ("EGFR", "eGFR")),
    "lft": (("ALT", "ALT"), ("ALP", "Alkaline phosphatase"), ("BILI", "Bilirubin"), ("ALB", "Albumin")),
    "lipids": (
        ("CHOL", "Total cholesterol"), ("HDL", "HDL cholesterol"), ("LDL", "LDL cholesterol"),
        ("TRIG", "Triglycerides"),
    ),
}  # fmt: skip
RNA_UNITS: Final = {
    "PULSE": "bpm", "WT": "kg", "SPO2": "%", "NA": "mmol/L", "K": "mmol/L", "UREA": "mmol/L", "CREAT": "umol/L",
    "ALT": "U/L", "ALP": "U/L", "BILI": "umol/L", "ALB": "g/L", "CHOL": "mmol/L", "HDL": "mmol/L", "LDL": "mmol/L",
    "TRIG": "mmol/L",
}  # fmt: skip

#: years of history a dense record reaches back (a shared care record's usual look-back)
_YEARS: Final = 5
#: the clinic each long-term condition is followed up in (Treatment Function Code)
_FOLLOW_UP_TFC: Final = {
    "hypertension": "300", "diabetes": "307", "asthma": "340", "depression": "710", "copd": "340", "ckd": "361",
    "heart_failure": "320", "af": "320", "ihd": "320", "osteoarthritis": "110", "hypothyroidism": "302",
    "dementia": "410", "breast_cancer": "370", "colon_cancer": "370", "prostate_cancer": "370",
    "lung_cancer": "370",
}  # fmt: skip
_KEY_OF_CODE: Final = {ltc.concept.code: ltc.key for ltc in ref.LONG_TERM_CONDITIONS}
_DAY: Final = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _Baseline:
    """A person's own steady values, so their series look like one person's (not independent draws)."""

    systolic: float
    diastolic: float
    pulse: float
    weight: float
    height_m: float


def densify(person: Person, *, seed: int, density: float, now: datetime) -> Person:
    """``person`` with the dense history of ``density`` added (the person unchanged at density 0).

    >>> from bcconnect_sandbox.population import make_person
    >>> from bcconnect_sandbox.settings import DEFAULT_NOW
    >>> sparse = make_person(0, 5, DEFAULT_NOW)
    >>> densify(sparse, seed=0, density=0, now=DEFAULT_NOW) is sparse
    True
    >>> dense = densify(sparse, seed=0, density=1, now=DEFAULT_NOW)
    >>> len(dense.observations) > len(sparse.observations)
    True
    """
    if not 0 <= density <= MAX_DENSITY:
        raise ValueError(f"density must be between 0 and {MAX_DENSITY}, got {density}")
    if density == 0:
        return person
    drawer = _Drawer(person, random.Random(f"{seed}:{person.index}:density"), density, now)
    observations = drawer.vitals() + drawer.labs()
    encounters = drawer.clinics()
    medications = drawer.repeats()
    return replace(
        person,
        observations=tuple(sorted(person.observations + observations, key=lambda o: o.effective)),
        encounters=tuple(sorted(person.encounters + encounters, key=lambda e: e.start)),
        medications=person.medications + medications,
    )


def expected_resources(person: Person) -> int:
    """How many FHIR resources the person's history gives across all trusts (before per-trust limits):
    one per observation part, a report per panel, and one per encounter, medication, condition, allergy.

    >>> from bcconnect_sandbox.population import make_person
    >>> from bcconnect_sandbox.settings import DEFAULT_NOW
    >>> expected_resources(make_person(0, 5, DEFAULT_NOW)) > 0
    True
    """
    results = sum(len(o.values) + 1 if o.kind in PANELS else 1 for o in person.observations)
    return (
        len(person.trusts)
        + results
        + len(person.encounters)
        + len(person.medications)
        + len(person.conditions)
        + len(person.allergies)
    )


class _Drawer:
    """Draws one person's dense history; the order of draws is part of determinism."""

    def __init__(self, person: Person, rng: random.Random, density: float, now: datetime) -> None:
        self.person = person
        self.rng = rng
        self.density = density
        self.now = now
        self.age = max(0, (now.date() - person.birth_date).days // 365)
        self.keys = {_KEY_OF_CODE.get(c.concept.code, "") for c in person.conditions}
        self.ltc = person.ltc_count
        self.years = min(_YEARS, max(1, self.age))
        adult = self.age >= 16
        male = person.sex == "male"
        height = rng.gauss(1.76 if male else 1.62, 0.07) if adult else 0.6 + self.age * 0.065
        bmi = min(45.0, max(17.0, rng.gauss(28.5 if ("diabetes" in self.keys) else 26.5, 4.0)))
        hypertensive = "hypertension" in self.keys
        self.base = _Baseline(
            systolic=rng.uniform(138, 165) if hypertensive else rng.uniform(108, 135),
            diastolic=rng.uniform(82, 98) if hypertensive else rng.uniform(64, 84),
            pulse=rng.uniform(58, 88),
            weight=bmi * height * height if adult else max(3.5, 3.5 + self.age * 3.0),
            height_m=height,
        )

    def _count(self, per_year: float) -> int:
        """Events over the look-back at ``per_year`` × density (a Poisson-like draw, so people differ)."""
        mean = per_year * self.years * self.density
        return max(0, round(self.rng.gammavariate(2.0, mean / 2.0))) if mean > 0 else 0

    def _when(self) -> datetime:
        days = self.rng.randint(1, self.years * 365)
        return self.now - days * _DAY + timedelta(minutes=self.rng.randint(8 * 60, 18 * 60)) - timedelta(hours=22)

    def _trust(self) -> str:
        trusts = self.person.trusts
        if len(trusts) == 1 or self.rng.random() < 0.65:
            return trusts[0]
        return self.rng.choice(trusts[1:])

    def vitals(self) -> tuple[Observation, ...]:
        """A set of vital signs at each ward round, clinic and A&E contact: BP, pulse, SpO2, weight, BMI."""
        rate = 0.8 + self.age / 60 + 1.3 * self.ltc
        out: list[Observation] = []
        rng, base = self.rng, self.base
        for _ in range(self._count(rate)):
            at, trust = self._when(), self._trust()
            sys_bp = round(base.systolic + rng.gauss(0, 8))
            out.append(Observation("bp", trust, at, (float(sys_bp), float(round(base.diastolic + rng.gauss(0, 6))))))
            out.append(Observation("pulse", trust, at, (float(round(base.pulse + rng.gauss(0, 7))),)))
            low = 90.0 if "copd" in self.keys else 94.0
            out.append(Observation("spo2", trust, at, (float(min(100, max(low, round(rng.gauss(97, 1.5))))),)))
            if self.age >= 2 and rng.random() < 0.6:
                weight = round(base.weight * rng.uniform(0.97, 1.03), 1)
                out.append(Observation("weight", trust, at, (weight,)))
                if self.age >= 18:
                    out.append(Observation("bmi", trust, at, (round(weight / base.height_m**2, 1),)))
        return tuple(out)

    def labs(self) -> tuple[Observation, ...]:
        """Blood draws: each brings FBC and U&E, often LFTs; lipids yearly for cardiovascular risk; HbA1c for
        diabetes twice a year."""
        rng = self.rng
        rate = (0.4 + self.age / 120 + 0.9 * self.ltc) if self.age >= 16 else 0.15
        out: list[Observation] = []
        ckd = "ckd" in self.keys
        for _ in range(self._count(rate)):
            at, trust = self._when(), self._trust()
            out.append(Observation("fbc", trust, at, _draw(rng, (ref.OBS_HB, ref.OBS_WBC, ref.OBS_PLT), 1)))
            if rng.random() < 0.9:
                values = list(_draw(rng, ANALYTES["ue"], 1))
                if ckd:  # stage 3: eGFR 30–59, creatinine raised with it
                    values[4] = round(rng.uniform(30, 59), 0)
                    values[3] = round(rng.uniform(120, 220), 0)
                out.append(Observation("ue", trust, at, tuple(values)))
            if rng.random() < 0.45:
                out.append(Observation("lft", trust, at, _draw(rng, ANALYTES["lft"], 1)))
        if self.keys & {"diabetes", "ihd", "hypertension", "ckd"} or (self.age >= 40 and rng.random() < 0.3):
            for _ in range(self._count(1.0)):
                out.append(Observation("lipids", self._trust(), self._when(), _draw(rng, ANALYTES["lipids"], 1)))
        if "diabetes" in self.keys:
            for _ in range(self._count(2.0)):
                out.append(Observation("hba1c", self._trust(), self._when(), (float(rng.randint(42, 90)),)))
        return tuple(out)

    def clinics(self) -> tuple[Encounter, ...]:
        """Outpatient follow-up series: each long-term condition is reviewed in its clinic every few months."""
        out: list[Encounter] = []
        for key in sorted(k for k in self.keys if k):
            tfc = _FOLLOW_UP_TFC[key]
            trust = self._trust()
            for _ in range(self._count(1.5)):
                start = self._when()
                out.append(Encounter("outpatient", trust, start, start + timedelta(minutes=20), tfc=tfc))
        return tuple(out)

    def repeats(self) -> tuple[Medication, ...]:
        """Repeat issues (every 28 days, some 56) of each long-term medicine over the last year × density, ending
        before the current prescription the person already holds (those issues are completed)."""
        out: list[Medication] = []
        months = min(12 * self.years, math.ceil(12 * self.density))
        for med in self.person.medications:
            interval = 56 if self.rng.random() < 0.25 else 28
            issue = med.authored - timedelta(days=interval)
            for _ in range(months * 28 // interval):
                if issue < self.person.birth_date:
                    break
                out.append(Medication(med.concept, med.trust, issue, status="completed"))
                issue -= timedelta(days=interval + self.rng.randint(-3, 3))
        return tuple(out)


def _draw(rng: random.Random, analytes: tuple[Analyte, ...], decimals: int) -> tuple[float, ...]:
    """One value per analyte, mostly inside its reference range, a few just outside it."""
    out = []
    for _, (low, high), _ in analytes:
        span = high - low
        out.append(round(rng.uniform(low - 0.05 * span, high + 0.05 * span), decimals))
    return tuple(out)
