"""The synthetic population: person ``i`` is a pure function of ``(seed, i, now)``.

Nothing is kept between persons, so a population of any size streams in constant memory and any person (and
so any page of any trust) can be recomputed on demand. Facts carry the trust where they happened; the
per-trust source records with their identity noise are derived in :mod:`bcconnect_sandbox.sources`.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Final

from bcconnect_sandbox import reference as ref
from bcconnect_sandbox.nhs_numbers import ALLOCATOR
from bcconnect_sandbox.referrals import Referral, ReferralDrawer
from bcconnect_sandbox.settings import NoiseSettings, ReferralSettings

_DAY: Final = timedelta(days=1)
_HISTORY_DAYS: Final = 5 * 365
_AGE_CUM: Final = tuple(itertools.accumulate(w for _, w in ref.AGE_BANDS))
_ETHNIC_CODES: Final = tuple(c for c, _ in ref.ETHNIC_WEIGHTS)
_ETHNIC_CUM: Final = tuple(itertools.accumulate(w for _, w in ref.ETHNIC_WEIGHTS))
_BOROUGH_CUM: Final = tuple(itertools.accumulate(b.weight for b in ref.BOROUGHS))
_NETWORK_CUM: Final = tuple(itertools.accumulate(n.weight for n in ref.NETWORKS))
_ALLERGY_CUM: Final = tuple(itertools.accumulate(w for _, w in ref.ALLERGIES))
#: number of long-term conditions by age: cumulative probabilities of 0, 1, 2, 3, 4, 5
_LTC_COUNT_CUM: Final = (
    (12, (0.90, 0.985, 1.0, 1.0, 1.0, 1.0)),
    (40, (0.70, 0.91, 0.975, 0.995, 1.0, 1.0)),
    (60, (0.47, 0.76, 0.92, 0.975, 0.995, 1.0)),
    (75, (0.26, 0.54, 0.77, 0.90, 0.96, 1.0)),
    (200, (0.14, 0.36, 0.60, 0.79, 0.91, 1.0)),
)
_EXTRA_TRUSTS_CUM: Final = (0.65, 0.90, 0.97, 1.0)  # known to 1, 2, 3 or 4 trusts
ALL_TRUST_CODES: Final = ("RL4", "RBK", "RNA", "RXK")


@dataclass(frozen=True, slots=True)
class Encounter:
    """A hospital contact. ``kind``: ae, emergency, elective, outpatient or sexual_health."""

    kind: str
    trust: str
    start: datetime
    end: datetime
    admission_method: str | None = None
    discharge_method: str | None = None
    tfc: str | None = None
    procedure: ref.Concept | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """A long-term condition recorded at a trust."""

    concept: ref.Concept
    trust: str
    onset: date


@dataclass(frozen=True, slots=True)
class Observation:
    """A measurement. ``kind``: hba1c, egfr, bmi, bp (values: systolic, diastolic) or fbc (Hb, WBC, PLT)."""

    kind: str
    trust: str
    effective: datetime
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Medication:
    """A prescription (dm+d) issued at a trust."""

    concept: ref.Concept
    trust: str
    authored: date
    #: ``active`` for the current prescription; ``completed`` for an earlier repeat issue of it
    status: str = "active"


@dataclass(frozen=True, slots=True)
class Allergy:
    """An allergy recorded at a trust."""

    concept: ref.Concept
    trust: str
    recorded: date


@dataclass(frozen=True, slots=True)
class Person:
    """One true person and everything that happened to them, before identity noise."""

    index: int
    person_id: str
    nhs_number: str | None
    given: str
    family: str
    sex: str
    birth_date: date
    ethnic_category: str
    borough: str
    address_line: str
    town: str
    postcode: str
    phone: str
    gp_practice: ref.Practice
    restricted: bool
    objects_to_sharing: bool
    trusts: tuple[str, ...]
    conditions: tuple[Condition, ...]
    encounters: tuple[Encounter, ...]
    observations: tuple[Observation, ...]
    medications: tuple[Medication, ...]
    allergies: tuple[Allergy, ...]
    referrals: tuple[Referral, ...]
    #: a middle name ("" when none): clerks record it, drop it, or take it for the first name
    middle: str = ""
    #: the surname before marriage ("" when unchanged): some trusts still hold it
    previous_family: str = ""
    #: how this person is related to person ``kin_index`` (twin, same_name_stranger, parent_child), if at all
    kin: str | None = None
    kin_index: int | None = None

    @property
    def ltc_count(self) -> int:
        """How many distinct long-term conditions the person has."""
        return len({c.concept.code for c in self.conditions})

    def emergency_admissions_since(self, start: datetime) -> int:
        """Emergency admissions (any trust) starting at or after ``start``."""
        return sum(1 for e in self.encounters if e.kind == "emergency" and e.start >= start)


def person_id(index: int) -> str:
    """The ground-truth id of person ``index``.

    >>> person_id(42)
    'PER0000042'
    """
    return f"PER{index:07d}"


def random_postcode(rng: random.Random, borough: ref.Borough) -> str:
    """A postcode-shaped string in one of the borough's districts."""
    district = rng.choice(borough.districts)
    letters = ref.POSTCODE_LETTERS
    return f"{district} {rng.randint(1, 9)}{rng.choice(letters)}{rng.choice(letters)}"


def make_person(
    seed: int,
    index: int,
    now: datetime,
    noise: NoiseSettings | None = None,
    *,
    referrals: ReferralSettings | None = None,
) -> Person:
    """Person ``index`` of the population seeded ``seed``, as seen at ``now`` (a pure function).

    Persons come in pairs ``(2k, 2k+1)``: at the rates of ``noise`` (default rates when None) person ``2k+1``
    is the twin of ``2k``, a stranger with the same name and date of birth in the same borough, or a parent or
    child with the same name at the same address; both persons of a pair know the relation.
    """
    # cohort facts (more conditions, repeat attenders, stays sent twice) come from a draw stream of their own
    from bcconnect_sandbox.cohort_facts import add_cohort_facts

    return add_cohort_facts(seed, _make_person_core(seed, index, now, noise, referrals), now)


def _make_person_core(
    seed: int, index: int, now: datetime, noise: NoiseSettings | None, referrals: ReferralSettings | None
) -> Person:
    noise = noise or _DEFAULT_NOISE
    person = _identity_extras(seed, _make_person(seed, index, now, referrals=referrals))
    kin = _kin_of(seed, index, noise)
    if kin is not None:
        base = _identity_extras(seed, _make_person(seed, index - 1, now, referrals=referrals))
        home = next(b for b in ref.BOROUGHS if b.name == base.borough)
        person = _identity_extras(seed, _make_person(seed, index, now, home, referrals))
        return _as_kin(seed, person, base, kin, now)
    if index % 2 == 0:
        partner = _kin_of(seed, index + 1, noise)
        if partner is not None:
            return replace(person, kin=partner, kin_index=index + 1)
    return person


_DEFAULT_NOISE: Final = NoiseSettings()
#: the share of persons with a middle name, of women whose surname changed at marriage, of double surnames
_MIDDLE_NAME_SHARE: Final = 0.6
_MARRIED_SHARE: Final = 0.35
_DOUBLE_SURNAME_SHARE: Final = 0.04


def _kin_of(seed: int, index: int, noise: NoiseSettings) -> str | None:
    """The relation of odd person ``index`` to person ``index - 1`` (its own draw, so both sides can ask)."""
    if index % 2 == 0:
        return None
    roll = random.Random(f"{seed}:{index}:kin").random()
    for kind, rate in (
        ("twin", noise.twins),
        ("same_name_stranger", noise.same_name_strangers),
        ("parent_child", noise.parent_child),
    ):
        if roll < rate:
            return kind
        roll -= rate
    return None


def _identity_extras(seed: int, person: Person) -> Person:
    """Middle name, double surname and maiden name, from a draw of their own (the rest stays as it was)."""
    rng = random.Random(f"{seed}:{person.index}:identity")
    pool = ref.NAME_POOLS[ref.NAME_POOL_OF_ETHNICITY[person.ethnic_category]]
    given_pool = pool.female if person.sex == "female" else pool.male
    middle = rng.choice([g for g in given_pool if g != person.given]) if rng.random() < _MIDDLE_NAME_SHARE else ""
    family = person.family
    if rng.random() < _DOUBLE_SURNAME_SHARE:
        other = rng.choice([f for f in pool.family if f != family and "-" not in f])
        family = f"{family}-{other}" if rng.random() < 0.6 else f"{family} {other}"
    previous = ""
    adult = (_REFERENCE_DAY - person.birth_date).days > 20 * 365
    if person.sex == "female" and adult and rng.random() < _MARRIED_SHARE:
        previous = rng.choice([f for f in pool.family if f != family])
    return replace(person, middle=middle, family=family, previous_family=previous)


_REFERENCE_DAY: Final = date(2026, 1, 1)


def _as_kin(seed: int, person: Person, base: Person, kin: str, now: datetime) -> Person:
    """Person ``person`` re-drawn as the twin, same-name stranger, or parent/child of ``base``."""
    rng = random.Random(f"{seed}:{person.index}:kin-details")
    pool = ref.NAME_POOLS[ref.NAME_POOL_OF_ETHNICITY[base.ethnic_category]]
    person = replace(person, ethnic_category=base.ethnic_category, family=base.family, kin=kin, kin_index=base.index)
    if kin == "twin":
        sex = base.sex if rng.random() < 0.5 else ("male" if base.sex == "female" else "female")
        names = [g for g in (pool.female if sex == "female" else pool.male) if g not in (base.given, base.middle)]
        given = rng.choice(names)
        # parents do not give one twin the other's first name as a middle name
        middle = person.middle if person.middle not in (base.given, given) else ""
        return replace(
            person, given=given, middle=middle, sex=sex, birth_date=base.birth_date, borough=base.borough,
            address_line=base.address_line, town=base.town, postcode=base.postcode,
            phone=base.phone if rng.random() < 0.5 else person.phone, gp_practice=base.gp_practice,
            previous_family="",
        )  # fmt: skip
    if kin == "same_name_stranger":
        borough = next(b for b in ref.BOROUGHS if b.name == base.borough)
        return replace(
            person, given=base.given, sex=base.sex, birth_date=base.birth_date, borough=base.borough,
            town=rng.choice(borough.towns), postcode=random_postcode(rng, borough), middle="", previous_family="",
        )  # fmt: skip
    gap = timedelta(days=rng.randint(20 * 365, 40 * 365))
    child_birth = base.birth_date + gap
    birth = child_birth if child_birth < now.date() - timedelta(days=365) else base.birth_date - gap
    return replace(
        person, given=base.given, sex=base.sex, birth_date=birth, borough=base.borough,
        address_line=base.address_line, town=base.town, postcode=base.postcode, phone=base.phone,
        previous_family="", middle="" if rng.random() < 0.5 else person.middle,
    )  # fmt: skip


def _make_person(
    seed: int, index: int, now: datetime, home: ref.Borough | None = None, referrals: ReferralSettings | None = None
) -> Person:
    rng = random.Random(f"{seed}:{index}")
    band = ref.AGE_BANDS[_pick(rng, _AGE_CUM)][0]
    age = rng.randint(band[0], band[1])
    birth = now.date() - timedelta(days=age * 365 + rng.randint(0, 364))
    sex = "female" if rng.random() < 0.51 else "male"
    ethnic = _ETHNIC_CODES[_pick(rng, _ETHNIC_CUM)]
    pool = ref.NAME_POOLS[ref.NAME_POOL_OF_ETHNICITY[ethnic]]
    given = rng.choice(pool.female if sex == "female" else pool.male)
    family = rng.choice(pool.family)
    borough = ref.BOROUGHS[_pick(rng, _BOROUGH_CUM)]
    borough = home or borough  # a relative living with (or near) another person: same draws, their borough
    practice = rng.choice(ref.PRACTICES_BY_BOROUGH[borough.name])
    trusts = _known_trusts(rng, borough.trust)
    history = _History(rng, now, trusts, age, referrals or ReferralSettings(), practice.code)
    conditions = history.conditions()
    history.admissions(len({c.concept.code for c in conditions}))
    history.attendances()
    referral_list = history.referrals()
    return Person(
        index=index,
        person_id=person_id(index),
        nhs_number=ALLOCATOR.number(index),
        given=given,
        family=family,
        sex=sex,
        birth_date=birth,
        ethnic_category=ethnic,
        borough=borough.name,
        address_line=f"{rng.randint(1, 240)} {rng.choice(ref.STREET_NAMES)}",
        town=rng.choice(borough.towns),
        postcode=random_postcode(rng, borough),
        phone=f"07{rng.randint(100_000_000, 999_999_999)}",
        gp_practice=practice,
        restricted=rng.random() < 0.003,
        objects_to_sharing=rng.random() < 0.01,
        trusts=trusts,
        conditions=conditions,
        encounters=tuple(sorted(history.encounters, key=lambda e: e.start)),
        observations=tuple(sorted(history.observations(conditions) + history.work_up, key=lambda o: o.effective)),
        medications=history.medications(conditions),
        allergies=history.allergies(),
        referrals=referral_list,
    )


def _pick(rng: random.Random, cumulative: tuple[float, ...]) -> int:
    """Index drawn with the weights whose running totals are ``cumulative``."""
    target = rng.random() * cumulative[-1]
    for i, edge in enumerate(cumulative):
        if target < edge:
            return i
    return len(cumulative) - 1


def _known_trusts(rng: random.Random, home: str) -> tuple[str, ...]:
    count = 1 + _pick(rng, _EXTRA_TRUSTS_CUM)
    others = [t for t in ALL_TRUST_CODES if t != home]
    rng.shuffle(others)
    return (home, *others[: count - 1])


class _History:
    """Draws the clinical history of one person; the order of draws is part of determinism."""

    def __init__(
        self,
        rng: random.Random,
        now: datetime,
        trusts: tuple[str, ...],
        age: int,
        referral_settings: ReferralSettings,
        practice: str,
    ) -> None:
        self.rng = rng
        self.now = now
        self.trusts = trusts
        self.age = age
        self.referral_settings = referral_settings
        self.practice = practice
        self.encounters: list[Encounter] = []
        #: results a referral came with (PSA for urology, FIT for colorectal), drawn with the referral
        self.work_up: tuple[Observation, ...] = ()

    def trust(self) -> str:
        """Mostly the home trust, sometimes another the person is known to."""
        if len(self.trusts) == 1 or self.rng.random() < 0.6:
            return self.trusts[0]
        return self.rng.choice(self.trusts[1:])

    def when(self, max_days: int = _HISTORY_DAYS, min_days: int = 0) -> datetime:
        """A moment ``min_days``–``max_days`` ago, on the minute, within the person's lifetime."""
        max_days = min(max_days, max(self.age * 365, 1))
        days = self.rng.randint(min(min_days, max_days), max_days)
        minutes = self.rng.randint(7 * 60, 21 * 60)
        return self.now - timedelta(days=days) + timedelta(minutes=minutes) - timedelta(hours=22)

    def conditions(self) -> tuple[Condition, ...]:
        """Long-term conditions: how many depends on age; which ones on weights and onset ages."""
        cum = next(c for limit, c in _LTC_COUNT_CUM if self.age < limit)
        count = _pick(self.rng, cum)
        eligible = [c for c in ref.LONG_TERM_CONDITIONS if c.min_age <= self.age]
        chosen: list[ref.LongTermCondition] = []
        while len(chosen) < count and eligible:
            weights = tuple(itertools.accumulate(c.weight for c in eligible))
            chosen.append(eligible.pop(_pick(self.rng, weights)))
        out = []
        for ltc in chosen:
            onset = self.when(max_days=15 * 365).date()
            out.append(Condition(ltc.concept, self.trusts[0], onset))
            if len(self.trusts) > 1 and self.rng.random() < 0.3:
                out.append(Condition(ltc.concept, self.rng.choice(self.trusts[1:]), onset))
        return tuple(out)

    def admissions(self, ltc_count: int) -> None:
        """Emergency admissions: ~1% are frequent (3+ in a year); everyone else has at most two in total."""
        frequent = self.rng.random() < (0.085 if ltc_count >= 3 else 0.001)
        if frequent:
            count, window = self.rng.randint(3, 5), 360
        else:
            chance = (0.04, 0.15, 0.25, 0.4)[min(ltc_count, 3)]
            count, window = (self.rng.randint(1, 2) if self.rng.random() < chance else 0), _HISTORY_DAYS
        for _ in range(count):
            start = self.when(max_days=window)
            trust = self.trust()
            method = self.rng.choice(("21", "21", "21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"))
            if method == "21":  # via A&E: the attendance precedes the admission
                self.encounters.append(Encounter("ae", trust, start - timedelta(hours=5), start - _DAY / 24))
            discharge = "4" if self.rng.random() < 0.01 else "1"
            end = start + timedelta(days=self.rng.randint(1, 12))
            self.encounters.append(Encounter("emergency", trust, start, min(end, self.now), method, discharge))

    def attendances(self) -> None:
        """A&E attendances without admission and sexual health clinic visits (sensitive)."""
        for _ in range(self.rng.choice((0, 0, 0, 0, 1, 1, 2))):
            start = self.when()
            self.encounters.append(Encounter("ae", self.trust(), start, start + timedelta(hours=4)))
        if 16 <= self.age <= 55 and self.rng.random() < 0.02:
            start = self.when(max_days=3 * 365)
            self.encounters.append(
                Encounter(
                    "sexual_health", self.trust(), start, start + timedelta(minutes=30), tfc=ref.SEXUAL_HEALTH_TFC
                )
            )

    def referrals(self) -> tuple[Referral, ...]:
        """Referrals (e-RS), their RTT pathways, appointments, triage outcomes and the contacts they caused."""
        chance = 0.12 + min(self.age, 80) / 400
        drawer = ReferralDrawer(
            self.rng, self.now, self.trusts, self.referral_settings, pick_trust=self.trust, practice=self.practice
        )
        out: list[Referral] = []
        work_up: list[Observation] = []
        for _ in range(2):
            if self.rng.random() >= chance:
                break
            chain = drawer.draw(ref.NETWORKS[_pick(self.rng, _NETWORK_CUM)])
            out.extend(chain)
            first = chain[0]
            sent = datetime.combine(first.authored, self.now.timetz()) - timedelta(days=self.rng.randint(3, 30))
            if first.network.name == "Urology":
                work_up.append(Observation("psa", first.trust, sent, (round(self.rng.uniform(*ref.OBS_PSA[1]), 1),)))
            elif first.network.name == "Colorectal":
                work_up.append(Observation("fit", first.trust, sent, (float(self.rng.randint(0, 250)),)))
            elif first.network.name == "Breast":
                self.encounters.append(
                    Encounter(
                        "outpatient", first.trust, sent, sent + timedelta(minutes=30), procedure=ref.PROC_MAMMOGRAPHY
                    )
                )
        for visit in drawer.visits:
            self.encounters.append(
                Encounter(
                    visit.kind,
                    visit.trust,
                    visit.start,
                    visit.start + (timedelta(days=visit.days) if visit.days else timedelta(minutes=20)),
                    visit.admission_method,
                    "1" if visit.kind == "elective" else None,
                    visit.tfc,
                    visit.procedure,
                )
            )
        self.work_up = tuple(work_up)
        return tuple(out)

    def observations(self, conditions: tuple[Condition, ...]) -> tuple[Observation, ...]:
        """HbA1c for diabetes, blood pressure, eGFR, BMI and full blood counts."""
        keys = {c.concept.code for c in conditions}
        rng = self.rng
        out: list[Observation] = []

        def add(kind: str, count: int, values: tuple[tuple[float, float], ...], decimals: int = 0) -> None:
            for _ in range(count):
                drawn = tuple(round(rng.uniform(lo, hi), decimals) for lo, hi in values)
                out.append(Observation(kind, self.trust(), self.when(max_days=3 * 365), drawn))

        if "44054006" in keys:
            add("hba1c", rng.randint(2, 4), (ref.OBS_HBA1C[1],))
        if "38341003" in keys or (self.age >= 18 and rng.random() < 0.2):
            add("bp", rng.randint(1, 3), ((105.0, 175.0), (60.0, 105.0)))
        if keys & {"433144002", "44054006", "38341003"}:
            add("egfr", rng.randint(1, 3), (ref.OBS_EGFR[1],))
        if self.age >= 18 and rng.random() < 0.3:
            add("bmi", 1, (ref.OBS_BMI[1],), 1)
        admissions = sum(1 for e in self.encounters if e.kind == "emergency")
        if admissions or rng.random() < 0.15:
            add("fbc", max(1, admissions), (ref.OBS_HB[1], ref.OBS_WBC[1], ref.OBS_PLT[1]), 1)
        return tuple(sorted(out, key=lambda o: o.effective))

    def medications(self, conditions: tuple[Condition, ...]) -> tuple[Medication, ...]:
        """One current prescription per treated long-term condition."""
        seen: set[str] = set()
        out = []
        for cond in conditions:
            ltc = next(c for c in ref.LONG_TERM_CONDITIONS if c.concept == cond.concept)
            if ltc.medication is not None and ltc.medication.code not in seen:
                seen.add(ltc.medication.code)
                out.append(Medication(ltc.medication, cond.trust, self.when(max_days=365).date()))
            if ltc.key == "af" and ref.MED_APIXABAN.code not in seen:  # anticoagulated: a surgical triage flag
                seen.add(ref.MED_APIXABAN.code)
                out.append(Medication(ref.MED_APIXABAN, cond.trust, self.when(max_days=365).date()))
        return tuple(out)

    def allergies(self) -> tuple[Allergy, ...]:
        """About one person in eight has a recorded allergy."""
        if self.rng.random() >= 0.12:
            return ()
        concept = ref.ALLERGIES[_pick(self.rng, _ALLERGY_CUM)][0]
        return (Allergy(concept, self.trust(), self.when().date()),)
