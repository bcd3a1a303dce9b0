"""Per-trust source records: each trust's own copy of a person, with its MRN and its identity noise.

A trust's records for person ``i`` are a pure function of ``(seed, i, trust, noise settings)``. Record ids
embed a per-trust bijection of ``(person index, record number)`` so the server can find a person from an id
without an index, while ids stay opaque to a client (they do not show the person index).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date
from typing import Final

from bcconnect_sandbox import reference as ref
from bcconnect_sandbox.density import PANELS
from bcconnect_sandbox.nhs_numbers import ALLOCATOR
from bcconnect_sandbox.population import (
    Allergy,
    Condition,
    Encounter,
    Medication,
    Observation,
    Person,
    random_postcode,
)
from bcconnect_sandbox.referrals import Referral
from bcconnect_sandbox.settings import NoiseSettings

MRN_PREFIX: Final = {"RL4": "RW", "RXK": "SW", "RNA": "P", "RBK": "WK"}
_ID_SPACE: Final = 10**9
_MULTIPLIER: Final = 482_713
_RECORDS_PER_PERSON: Final = 4  # 0 primary, 1 in-trust duplicate, 2 pseudonymous sexual-health registration

#: Record kinds in the order a person's records are listed, and the letter their ids carry.
KIND_LETTER: Final = {
    "patient": "",
    "consent": "X",
    "condition": "C",
    "allergy": "A",
    "medication": "M",
    "encounter": "E",
    "procedure": "P",
    "observation": "O",
    "report": "D",
    "referral": "R",
    "pathway": "W",
    "appointment": "B",
}
KINDS: Final = tuple(KIND_LETTER)


@dataclass(frozen=True, slots=True)
class SourcePatient:
    """A trust's patient record: the person as this trust's clerks typed them in."""

    id: str
    trust: str
    person_index: int
    record_no: int
    nhs_number: str | None
    nhs_status: str | None
    given: str
    family: str
    sex: str
    birth_date: date
    address_line: str
    town: str
    postcode: str
    phone: str
    ethnic_category: str
    gp_practice: str
    restricted: bool
    objects_to_sharing: bool
    active: bool = True
    replaced_by: str | None = None
    replaces: str | None = None
    pseudonymous: bool = False
    #: the identity noise categories this record carries (ground truth, never served)
    noise: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StaticFact:
    """A record that belongs to no patient: the trust's Organization, GP practices and clinicians."""

    code: str
    name: str


Fact = StaticFact | SourcePatient | Encounter | Condition | Observation | Medication | Allergy | Referral


@dataclass(frozen=True, slots=True)
class Record:
    """One source record of a trust. ``part`` picks a sub-result (a blood count component); ``refs`` are the
    ids of related records of the same trust (the referral of an appointment, the results of a report)."""

    kind: str
    id: str
    patient_id: str
    fact: Fact
    part: int = 0
    refs: tuple[str, ...] = ()
    status: str | None = None


class IdCodec:
    """Encodes ``(person index, record number)`` as a trust's MRN and back; a bijection per seed and trust."""

    def __init__(self, seed: int, trust: str) -> None:
        self.trust = trust
        self.prefix = MRN_PREFIX[trust]
        self._offset = random.Random(f"{seed}:{trust}:ids").randrange(_ID_SPACE)
        self._inverse = pow(_MULTIPLIER, -1, _ID_SPACE)

    def mrn(self, person_index: int, record_no: int = 0) -> str:
        """The MRN (and FHIR id) of a patient record."""
        slot = person_index * _RECORDS_PER_PERSON + record_no
        return f"{self.prefix}{(slot * _MULTIPLIER + self._offset) % _ID_SPACE:09d}"

    def person_of(self, record_id: str) -> int | None:
        """The person index behind any record id of this trust, or None when it is not one of ours."""
        head = record_id.split("-", 1)[0]
        digits = head[len(self.prefix) :]
        if not head.startswith(self.prefix) or len(digits) != 9 or not digits.isdigit():
            return None
        slot = ((int(digits) - self._offset) * self._inverse) % _ID_SPACE
        return slot // _RECORDS_PER_PERSON


def trust_records(person: Person, trust: str, *, seed: int, noise: NoiseSettings, codec: IdCodec) -> list[Record]:
    """Everything ``trust`` holds about ``person``, patients first, in a fixed order (empty if unknown)."""
    if trust not in person.trusts:
        return []
    rng = random.Random(f"{seed}:{person.index}:{trust}:noise")
    primary = _noisy_patient(person, trust, rng, noise, codec.mrn(person.index, 0), 0)
    patients = [primary]
    if rng.random() < noise.duplicate:
        dup = _noisy_patient(person, trust, rng, noise, codec.mrn(person.index, 1), 1, worse=True)
        if rng.random() < noise.merged_at_start:
            dup = replace(dup, active=False, replaced_by=primary.id)
            patients[0] = primary = replace(primary, replaces=dup.id)
        patients.append(dup)
    pseudonymous = rng.random() < 0.4
    records = [Record("patient", p.id, p.id, p) for p in patients]
    pid = primary.id
    counters = dict.fromkeys(KINDS, 0)

    def add(
        kind: str, patient_id: str, fact: Fact, part: int = 0, refs: tuple[str, ...] = (), status: str | None = None
    ) -> str:
        record_id = f"{pid}-{KIND_LETTER[kind]}{counters[kind]}"
        counters[kind] += 1
        records.append(Record(kind, record_id, patient_id, fact, part, refs, status))
        return record_id

    if trust == "RL4" and person.objects_to_sharing and person.gp_practice.integrated:
        add("consent", pid, primary)
    for cond in person.conditions:
        if cond.trust == trust:
            add("condition", pid, cond)
    for allergy in person.allergies:
        if allergy.trust == trust:
            add("allergy", pid, allergy)
    for med in person.medications:
        if med.trust == trust:
            add("medication", pid, med, status=None if med.status == "active" else med.status)
    first_encounter = True
    for enc in person.encounters:
        if enc.trust != trust:
            continue
        owner = pid
        if enc.kind == "sexual_health" and pseudonymous:
            shadow = _pseudonymous_patient(primary, codec.mrn(person.index, 2))
            if not any(r.id == shadow.id for r in records):
                records.insert(len(patients), Record("patient", shadow.id, shadow.id, shadow))
            owner = shadow.id
        elif first_encounter and len(patients) > 1:
            owner = patients[1].id  # the duplicate record carries one contact, as real duplicates do
        first_encounter = False
        enc_id = add("encounter", owner, enc)
        if enc.procedure is not None:
            add("procedure", owner, enc, refs=(enc_id,))
    for obs in person.observations:
        if obs.trust != trust:
            continue
        if obs.kind in PANELS:
            parts = tuple(add("observation", pid, obs, part=k) for k in range(len(obs.values)))
            add("report", pid, obs, refs=parts)
        else:
            add("observation", pid, obs)
    for referral in person.referrals:
        if referral.trust != trust:
            continue
        ref_id = add("referral", pid, referral)
        if referral.network.tfc is not None and referral.triage != "returned":  # a returned referral has no pathway
            add("pathway", pid, referral, refs=(ref_id,))
        if referral.appointment_status is not None:
            add("appointment", pid, referral, refs=(ref_id,), status=referral.appointment_status)
    return records


def _noisy_patient(
    person: Person,
    trust: str,
    rng: random.Random,
    noise: NoiseSettings,
    record_id: str,
    record_no: int,
    *,
    worse: bool = False,
) -> SourcePatient:
    """This trust's copy of ``person`` with identity noise; each category applied is named in ``noise``."""
    labels: list[str] = [person.kin] if person.kin else []
    nhs: str | None = person.nhs_number
    status: str | None = "01"
    roll = rng.random()
    if nhs is None or roll < noise.nhs_missing * (6 if worse else 1):
        nhs, status = None, None
        labels.append("nhs_missing")
    elif roll < noise.nhs_missing + noise.nhs_unverified:
        status = rng.choice(("02", "02", "03", "04", "05"))
        labels.append("nhs_unverified")
    given, family = person.given, person.family
    if rng.random() < noise.nickname and given in ref.NICKNAME_VARIANTS:
        given = rng.choice(ref.NICKNAME_VARIANTS[given])
        labels.append("nickname")
    elif person.middle and rng.random() < noise.middle_as_first:
        given = person.middle
        labels.append("middle_as_first")
    elif person.middle and rng.random() < 0.5:
        given = f"{given} {person.middle}"  # the middle name recorded: not noise
    if rng.random() < noise.transliteration and ref.NAME_POOL_OF_ETHNICITY[person.ethnic_category] in _ROMANISED_POOLS:
        varied_given, varied_family = _transliterate(rng, given), _transliterate(rng, family)
        if (varied_given, varied_family) != (given, family):
            given, family = varied_given, varied_family
            labels.append("transliteration")
    if person.previous_family and rng.random() < noise.maiden_name:
        family = person.previous_family
        labels.append("maiden_name")
    elif ("-" in family or " " in family) and rng.random() < noise.surname_part_dropped:
        family = rng.choice(family.replace("-", " ").split())
        labels.append("surname_part_dropped")
    if rng.random() < noise.typo * (4 if worse else 1):
        if rng.random() < 0.5:
            family = _typo(rng, family)
        else:
            given = _typo(rng, given)
        labels.append("typo")
    if rng.random() < noise.name_swap:
        given, family = family, given.split(" ")[0]
        labels.append("name_swap")
    if rng.random() < noise.title_in_given:
        title = {"male": ("Mr", "Mr", "Dr"), "female": ("Mrs", "Miss", "Ms")}.get(person.sex, ("Mx",))
        given = f"{rng.choice(title)} {given}"
        labels.append("title_in_given")
    if rng.random() < noise.capitals:
        given, family = given.upper(), family.upper()
        labels.append("capitals")
    birth = person.birth_date
    if rng.random() < noise.dob_swapped and birth.day <= 12 and birth.day != birth.month:
        birth = date(birth.year, birth.day, birth.month)
        labels.append("dob_swapped")
    if rng.random() < noise.dob_year_typo:
        typo_year = _year_typo(rng, birth)
        if typo_year is not None:
            birth = typo_year
            labels.append("dob_year_typo")
    if nhs is not None and rng.random() < noise.nhs_transposed:
        transposed = _transposed_nhs_number(rng, nhs)
        if transposed is not None:
            nhs, status = transposed, rng.choice(("02", "03", "04", "05"))
            labels.append("nhs_transposed")
    if rng.random() < noise.nhs_other_person:
        other = person.kin_index if person.kin_index is not None else person.index + rng.choice((-7, -3, 2, 5, 11))
        number = ALLOCATOR.number(max(other, 0)) if other != person.index else None
        if number is not None and number != nhs:
            nhs, status = number, rng.choice(("02", "03", "04", "05"))
            labels.append("nhs_other_person")
    sex = person.sex
    if rng.random() < noise.sex_unknown:
        sex = "unknown"
        labels.append("sex_unknown")
    address, town, postcode = person.address_line, person.town, person.postcode
    phone = person.phone
    if rng.random() < noise.moved_house:  # the trust still has a previous address (and often phone)
        borough = next(b for b in ref.BOROUGHS if b.name == person.borough)
        address = f"{rng.randint(1, 240)} {rng.choice(ref.STREET_NAMES)}"
        town, postcode = rng.choice(borough.towns), random_postcode(rng, borough)
        if rng.random() < 0.3:
            phone = f"07{rng.randint(100_000_000, 999_999_999)}"
        labels.append("moved_house")
    if rng.random() < noise.phone_missing:
        phone = ""
        labels.append("phone_missing")
    elif rng.random() < noise.landline:
        phone = f"{rng.choice(_LANDLINE_CODES)}{rng.randint(200_000, 999_999)}"
        labels.append("landline")
    if worse:
        labels.append("duplicate")
    return SourcePatient(
        id=record_id,
        trust=trust,
        person_index=person.index,
        record_no=record_no,
        nhs_number=nhs,
        nhs_status=status if nhs else None,
        given=given,
        family=family,
        sex=sex,
        birth_date=birth,
        address_line=address,
        town=town,
        postcode=postcode,
        phone=phone,
        ethnic_category=person.ethnic_category,
        gp_practice=person.gp_practice.code,
        restricted=person.restricted,
        objects_to_sharing=person.objects_to_sharing,
        noise=tuple(dict.fromkeys(labels)),
    )


#: name pools whose names are romanised from another script (Gurmukhi, Urdu, Bengali, Chinese, Arabic)
_ROMANISED_POOLS: Final = frozenset({"south_asian", "pakistani", "bangladeshi", "chinese", "middle_eastern"})
#: the region's landline area codes: Wolverhampton, Dudley, Walsall, Sandwell/Birmingham
_LANDLINE_CODES: Final = ("01902", "01384", "01922", "0121")
#: spelling alternations seen when one name is romanised by different clerks (each both ways)
_TRANSLITERATIONS: Final = (
    ("ammed", "ammad"), ("mohamm", "muhamm"), ("moham", "muham"), ("mm", "m"), ("ee", "i"), ("oo", "u"),
    ("qui", "qi"), ("q", "k"), ("ou", "u"), ("ch", "sh"), ("dh", "d"), ("th", "t"), ("kh", "k"), ("ph", "f"),
    ("y", "i"), ("w", "u"), ("z", "s"), ("j", "g"), ("ai", "ay"), ("a", "e"), ("u", "o"), ("i", "ee"),
)  # fmt: skip


def _transliterate(rng: random.Random, name: str) -> str:
    """One romanisation variant of ``name`` (one alternation applied, in either direction), case kept."""
    lower = name.lower()
    options = [(a, b) for a, b in _TRANSLITERATIONS if a in lower[1:]] + [
        (b, a) for a, b in _TRANSLITERATIONS if b in lower[1:]
    ]
    if not options:
        return name
    old, new = rng.choice(options)
    at = lower.index(old, 1)
    varied = lower[:at] + new + lower[at + len(old) :]
    return varied.upper() if name.isupper() else varied.title()


def _year_typo(rng: random.Random, birth: date) -> date | None:
    """The date with one digit of the year mistyped (last digit off by one, or the last two transposed)."""
    year = birth.year
    options = [year + 1, year - 1]
    tens, units = divmod(year % 100, 10)
    if tens != units:
        options.append(year - year % 100 + units * 10 + tens)
    try:
        return birth.replace(year=rng.choice(options))
    except ValueError:
        return None  # 29 February in a year that has none


def _transposed_nhs_number(rng: random.Random, number: str) -> str | None:
    """``number`` with two neighbouring digits swapped such that Modulus 11 still holds, if any swap does."""
    positions = list(range(8))
    rng.shuffle(positions)
    for at in positions:
        digits = number[:at] + number[at + 1] + number[at] + number[at + 2 :]
        if digits != number and _mod11_valid(digits):
            return digits
    return None


def _mod11_valid(number: str) -> bool:
    total = sum(int(d) * (10 - i) for i, d in enumerate(number[:9]))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(number[9])


def _pseudonymous_patient(primary: SourcePatient, record_id: str) -> SourcePatient:
    """A sexual-health clinic registration: no NHS number, no address, only what the patient chose to give."""
    return replace(
        primary,
        id=record_id,
        record_no=2,
        nhs_number=None,
        nhs_status=None,
        address_line="",
        town="",
        postcode="",
        phone="",
        replaced_by=None,
        replaces=None,
        active=True,
        pseudonymous=True,
    )


def _typo(rng: random.Random, text: str) -> str:
    """One keyboard slip: swap, drop or double a letter."""
    if len(text) < 3:
        return text + text[-1]
    at = rng.randrange(1, len(text) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return text[:at] + text[at + 1] + text[at] + text[at + 2 :]
    if kind == 1:
        return text[:at] + text[at + 1 :]
    return text[:at] + text[at] + text[at:]


def static_records(trust: str) -> list[Record]:
    """The organisations and practitioners a trust serves, listed before every patient."""
    trust_name = next(t for t in ref.BOROUGHS if t.trust == trust).name
    out = [Record("organization", trust, "", StaticFact(trust, f"{trust_name} synthetic trust"))]
    out += [Record("organization", p.code, "", StaticFact(p.code, p.name)) for p in ref.PRACTICES]
    for n, family in enumerate(("Okafor", "Smith", "Sandhu", "Wright", "Hussain")):
        out.append(Record("practitioner", f"{trust.lower()}-c{n}", "", StaticFact(f"C{n:06d}", family)))
    return out
