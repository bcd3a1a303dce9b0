"""The synthetic population: a pure function of (seed, index), with the shape the issue asks for."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from bcconnect.fhir.nhs_number import is_valid
from bcconnect_sandbox import reference as ref
from bcconnect_sandbox.population import Person, make_person
from bcconnect_sandbox.settings import DEFAULT_NOW

SAMPLE = 8_000


@pytest.fixture(scope="module")
def people() -> list[Person]:
    """A sample large enough for the distribution checks (about a second to draw)."""
    return [make_person(11, i, DEFAULT_NOW) for i in range(SAMPLE)]


def test_person_is_a_pure_function_of_seed_and_index() -> None:
    """The same (seed, index) gives an equal person; another seed or index gives another."""
    assert make_person(3, 17, DEFAULT_NOW) == make_person(3, 17, DEFAULT_NOW)
    assert make_person(3, 17, DEFAULT_NOW) != make_person(4, 17, DEFAULT_NOW)
    assert make_person(3, 17, DEFAULT_NOW) != make_person(3, 18, DEFAULT_NOW)


def test_nhs_numbers_are_valid_unique_and_in_the_test_range(people: list[Person]) -> None:
    """Every person has a Mod-11-valid number starting 999, and no two share one."""
    numbers = [p.nhs_number for p in people]
    assert all(n is not None and n.startswith("999") and is_valid(n) for n in numbers)
    assert len(set(numbers)) == len(numbers)


def test_comorbidity_and_frequent_admission_shares(people: list[Person]) -> None:
    """~10% have 3+ long-term conditions (±2.5 points); ~1% had 3+ emergency admissions in 12 months."""
    year_ago = DEFAULT_NOW - timedelta(days=365)
    multi = sum(p.ltc_count >= 3 for p in people) / SAMPLE
    frequent = sum(p.emergency_admissions_since(year_ago) >= 3 for p in people) / SAMPLE
    assert 0.075 <= multi <= 0.125
    assert 0.005 <= frequent <= 0.016


def test_demographic_shape(people: list[Person]) -> None:
    """Sexes near 51/49, White British the largest ethnic group but not all, ages 0–100, all trusts used."""
    sexes = Counter(p.sex for p in people)
    assert 0.47 <= sexes["female"] / SAMPLE <= 0.55
    ethnic = Counter(p.ethnic_category for p in people)
    assert 0.60 <= ethnic["A"] / SAMPLE <= 0.75
    assert {"H", "J", "M", "N", "99"} <= set(ethnic)
    ages = [(DEFAULT_NOW.date() - p.birth_date).days // 365 for p in people]
    assert min(ages) == 0
    assert 90 <= max(ages) <= 101
    assert Counter(len(p.trusts) for p in people).keys() == {1, 2, 3, 4}


def test_postcodes_and_practices_match_the_borough(people: list[Person]) -> None:
    """A person's postcode district and GP practice belong to their borough (WV, WS, DY, B6x/B7x)."""
    for p in people[:500]:
        borough = next(b for b in ref.BOROUGHS if b.name == p.borough)
        assert p.postcode.split(" ")[0] in borough.districts
        assert p.gp_practice.borough == p.borough
        assert p.trusts[0] == borough.trust


def test_clinical_history_has_every_kind_of_fact(people: list[Person]) -> None:
    """Encounters of every kind, admission methods in the right ranges, referrals to every network."""
    kinds = Counter(e.kind for p in people for e in p.encounters)
    assert set(kinds) == {"ae", "emergency", "elective", "outpatient", "sexual_health"}
    for p in people:
        for e in p.encounters:
            if e.kind == "emergency":
                assert e.admission_method in {"21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"}
            if e.kind == "elective":
                assert e.admission_method in {"11", "12", "13"}
            assert e.start <= DEFAULT_NOW
    networks = {r.network.name for p in people for r in p.referrals}
    assert networks == {n.name for n in ref.NETWORKS}
    priorities = Counter(r.priority for p in people for r in p.referrals)
    assert set(priorities) == {"routine", "urgent", "asap"}
    assert sum(p.restricted for p in people) > 0
    assert sum(p.objects_to_sharing for p in people) > 0


def test_waiting_times_reach_the_long_wait_buckets(people: list[Person]) -> None:
    """Open RTT pathways include waits beyond 18, 40, 52, 65 and 78 weeks."""
    waits = [
        (DEFAULT_NOW.date() - r.authored).days / 7
        for p in people
        for r in p.referrals
        if r.clock_stop is None and r.network.tfc is not None
    ]
    for weeks in (18, 40, 52, 65, 78):
        assert any(w > weeks for w in waits), weeks


def test_persons_beyond_the_test_range_have_no_nhs_number() -> None:
    """The 999 range holds 909,091 valid numbers; the person after the last one has none (documented limit)."""
    beyond = make_person(1, 909_091, DEFAULT_NOW)
    assert beyond.nhs_number is None
    assert beyond.person_id == "PER0909091"
