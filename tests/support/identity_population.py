"""Synthetic source Patients with identity noise and their ground truth, for the identity benchmarks and tests.

Persons are drawn from the sandbox's reference tables (names, boroughs, test-range NHS numbers); each trust a
person is known to gets its own copy with noise at the rates of the sandbox's default ``NoiseSettings`` (scaled
by ``noise``): NHS number missing or unverified, a typo, a nickname, day and month swapped, a house move, and
in-trust duplicates. Records are FHIR Patients in the mapping's shape, so they go through the same
normalisation as ingested data. Everything is a pure function of ``(seed, index)``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from bcconnect.fhir.constants import (
    NHS_NUMBER_SYSTEM,
    NHS_NUMBER_VERIFICATION_EXTENSION,
    NHS_NUMBER_VERIFICATION_SYSTEM,
    SOURCE_ORG_TAG_SYSTEM,
    mrn_system,
)
from bcconnect_sandbox import reference as ref
from bcconnect_sandbox.nhs_numbers import ALLOCATOR

TRUSTS = ("RL4", "RBK", "RNA", "RXK")
_NAMESPACE = uuid.UUID("0b6f0d5e-7a51-4d0c-8f0e-3c2a4f6b9d10")
_BASE_RATES = {
    "nhs_missing": 0.05,
    "nhs_unverified": 0.08,
    "typo": 0.03,
    "nickname": 0.04,
    "dob_swapped": 0.01,
    "moved_house": 0.05,
    "duplicate": 0.02,
    "phone_missing": 0.10,
}
_NICK_OF = {k.lower(): v for k, v in ref.NICKNAMES.items()}
_POOLS = list(ref.NAME_POOLS.values())
_POOL_WEIGHTS = [67.5, 12, 5, 1.5, 4.5, 4, 4, 0.5, 1.5]
_NOW = date(2026, 11, 1)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One trust's Patient for a person, and who that person truly is."""

    ods_code: str
    patient: dict[str, Any]
    person_id: str


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 3:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.random()
    if kind < 0.4:
        return word[:i] + word[i + 1 :]  # dropped letter
    if kind < 0.7:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # transposed letters
    return word[:i] + rng.choice("aeinorst") + word[i + 1 :]  # wrong letter


def _postcode(rng: random.Random, borough: ref.Borough) -> str:
    letters = ref.POSTCODE_LETTERS
    return f"{rng.choice(borough.districts)} {rng.randint(1, 9)}{rng.choice(letters)}{rng.choice(letters)}"


def _patient(
    rng: random.Random, ods: str, person: dict[str, Any], rates: dict[str, float], serial: int
) -> dict[str, Any]:
    given, family, birth = person["given"], person["family"], person["birth"]
    if rng.random() < rates["nickname"] and given.lower() in _NICK_OF:
        given = _NICK_OF[given.lower()]
    if rng.random() < rates["typo"]:
        if rng.random() < 0.5:
            given = _typo(rng, given)
        else:
            family = _typo(rng, family)
    if rng.random() < rates["dob_swapped"] and birth.day <= 12 and birth.day != birth.month:
        birth = date(birth.year, birth.day, birth.month)
    postcode = person["postcode"]
    phone: str | None = person["phone"]
    if rng.random() < rates["moved_house"]:
        postcode = _postcode(rng, person["borough"])
        if rng.random() < 0.5:
            phone = f"07{rng.randint(100_000_000, 999_999_999)}"
    if rng.random() < rates["phone_missing"]:
        phone = None
    mrn = f"{ods}{serial:08d}"
    pid = str(uuid.uuid5(_NAMESPACE, f"{ods}|{mrn}"))
    identifiers: list[dict[str, Any]] = []
    nhs = person["nhs"]
    if nhs and rng.random() >= rates["nhs_missing"]:
        status = "02" if rng.random() < rates["nhs_unverified"] else "01"
        identifiers.append(
            {
                "system": NHS_NUMBER_SYSTEM,
                "value": nhs,
                "extension": [
                    {
                        "url": NHS_NUMBER_VERIFICATION_EXTENSION,
                        "valueCodeableConcept": {
                            "coding": [{"system": NHS_NUMBER_VERIFICATION_SYSTEM, "code": status}]
                        },
                    }
                ],
            }
        )
    identifiers.append({"system": mrn_system(ods), "value": mrn})
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"tag": [{"system": SOURCE_ORG_TAG_SYSTEM, "code": ods}], "source": f"urn:{ods}/Patient/{mrn}"},
        "identifier": identifiers,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": person["sex"],
        "birthDate": birth.isoformat(),
        "address": [{"postalCode": postcode}],
    }
    if phone:
        patient["telecom"] = [{"system": "phone", "value": phone}]
    return patient


def person_records(index: int, *, seed: int = 0, noise: float = 1.0) -> list[SourceRecord]:
    """The source records of person ``index`` (one per trust it is known to, plus in-trust duplicates)."""
    rng = random.Random(f"identity:{seed}:{index}")
    rates = {k: min(v * noise, 1.0) for k, v in _BASE_RATES.items()}
    pool = rng.choices(_POOLS, weights=_POOL_WEIGHTS)[0]
    sex = "female" if rng.random() < 0.51 else "male"
    borough = rng.choice(ref.BOROUGHS)
    person = {
        "given": rng.choice(pool.female if sex == "female" else pool.male),
        "family": rng.choice(pool.family),
        "sex": sex,
        "birth": _NOW - timedelta(days=rng.randint(0, 95 * 365)),
        "borough": borough,
        "postcode": _postcode(rng, borough),
        "phone": f"07{rng.randint(100_000_000, 999_999_999)}",
        "nhs": ALLOCATOR.number(index),
    }
    count = 1 + sum(rng.random() < p for p in (0.35, 0.10, 0.03))
    trusts = [borough.trust, *rng.sample([t for t in TRUSTS if t != borough.trust], count - 1)]
    person_id = f"PER{index:07d}"
    out = []
    serial = index * 4
    for ods in trusts:
        out.append(SourceRecord(ods, _patient(rng, ods, person, rates, serial), person_id))
        serial += 1
        if rng.random() < rates["duplicate"]:
            out.append(SourceRecord(ods, _patient(rng, ods, person, rates, serial + 10**9), person_id))
    return out


def population(persons: int, *, seed: int = 0, noise: float = 1.0, start: int = 0) -> Iterator[SourceRecord]:
    """Every source record of persons ``start`` … ``start + persons - 1``, person by person."""
    for index in range(start, start + persons):
        yield from person_records(index, seed=seed, noise=noise)
