"""The SQL evaluation over the facts read model gives exactly what the plain Python reading gives.

:class:`Evaluator` over :class:`PersonFacts` is the oracle (the unit tests of the rules hold it to the
definitions). Random persons — birth dates around the age bounds, boroughs and practices or none, conditions
recorded under one or two Patient ids, stays and attendances overlapping, chained, touching, open-ended and on
both edges of the window — are written into the read model's tables and every rule shape is evaluated both ways,
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from bcconnect.cohorts import Evaluator, PersonFacts, Rule, load_definitions, months_before, parse_definitions
from bcconnect.cohorts._evaluate import SqlEvaluator
from bcconnect.cohorts._extract import ATTENDANCES, STAYS, GoldenFacts
from bcconnect.cohorts._facts import FactBatch, apply_facts, to_us
from bcconnect.store import Tx, open_store

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DEFINITIONS = load_definitions()
SETS = sorted(DEFINITIONS.condition_sets)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _person(rng: random.Random, n: int) -> tuple[PersonFacts, FactBatch]:
    person = f"person-{n:04d}"
    sources = [f"src-{n:04d}-{k}" for k in range(rng.choice((1, 1, 2)))]
    birth = None
    if rng.random() < 0.95:
        # many birthdays on and around the day of the computation, to meet the age bounds exactly
        years = rng.choice((17, 18, 64, 65, 66, 84, 85, 40, 90))
        birth = date(NOW.year - years, NOW.month, NOW.day) + timedelta(days=rng.choice((-1, 0, 0, 1, 200)))
    borough = rng.choice(("Dudley", "Sandwell", "Walsall", "Wolverhampton", None))
    practice = rng.choice(("M87001", "M87002", "M88001", None))
    facts = PersonFacts(person, nhs_number=None, birth_date=birth, borough=borough, practice=practice)
    batch = FactBatch()
    batch.persons[person] = GoldenFacts(person, None, birth, None, borough, practice, (person, *sources))
    for k, name in enumerate(rng.sample(SETS, rng.choice((0, 1, 2, 2, 3, 3, 4, 5)))):
        codes = sorted(DEFINITIONS.condition_sets[name])
        facts.condition_sets.add(name)
        for j in range(rng.choice((1, 1, 2))):  # the same condition from two trusts, or two codes of a set
            batch.conditions[f"cond-{n}-{k}-{j}"] = (rng.choice(sources), frozenset({rng.choice(codes)}))
    # a Condition outside every set counts for nothing
    batch.conditions[f"cond-{n}-other"] = (sources[0], frozenset({"999999999"}))
    edge = months_before(NOW, 12)
    for kind, target in ((STAYS, facts.stays), (ATTENDANCES, facts.attendances)):
        anchors = [edge, NOW, edge - timedelta(days=20), NOW - timedelta(days=100), NOW + timedelta(days=3)]
        for k in range(rng.choice((0, 0, 1, 2, 3, 4, 6))):
            start = rng.choice(anchors) + timedelta(seconds=rng.choice((0, 0, 1, -1, 3600 * rng.randint(-72, 72))))
            end = start + timedelta(hours=rng.choice((0, 5, 30, 200)))
            if rng.random() < 0.05:
                end = datetime.max.replace(tzinfo=UTC)  # still open
            end = max(end, start + timedelta(seconds=1))
            target.append((start, end))
            batch.encounters[f"enc-{n}-{kind}-{k}"] = (rng.choice(sources), kind, to_us(start), to_us(end), "trust")
            if rng.random() < 0.3:  # the same stay from a second trust, hours apart
                shifted = (start + timedelta(hours=2), min(end, NOW + timedelta(days=900)) + timedelta(hours=3))
                target.append(shifted)
                batch.encounters[f"enc-{n}-{kind}-{k}-b"] = (
                    rng.choice(sources), kind, to_us(shifted[0]), to_us(shifted[1]), "other",
                )  # fmt: skip
    return facts, batch


def _rules() -> list[Rule]:
    texts: list[dict[str, object]] = [
        {"conditions": {"min": 3}},
        {"conditions": {"sets": ["diabetes", "copd", "asthma"], "min": 1, "max": 2}},
        {"conditions": {"max": 0}},
        {"emergency_admissions": {"min": 3, "months": 12}},
        {"emergency_admissions": {"min": 1, "months": 12}},
        {"emergency_admissions": {"max": 1, "months": 12}},
        {"emergency_admissions": {"min": 2, "max": 3, "months": 6}},
        {"ae_attendances": {"min": 5, "months": 12}},
        {"ae_attendances": {"min": 0, "months": 12}},
        {"age": {"min": 65}},
        {"age": {"min": 18, "max": 64}},
        {"age": {"max": 84}},
        {"not": {"borough": ["Dudley", "Sandwell"]}},
        {"practice": ["M87001"]},
        {
            "all": [
                {"age": {"min": 65, "max": 84}},
                {"any": [{"borough": "Dudley"}, {"not": {"practice": "M88001"}}]},
                {"not": {"conditions": {"sets": ["diabetes"], "min": 1}}},
            ]
        },
        {"any": [{"emergency_admissions": {"min": 2}}, {"ae_attendances": {"min": 3, "months": 24}}]},
        {"not": {"any": [{"age": {"min": 18}}, {"conditions": {"min": 1}}]}},
    ]
    cohorts = {f"c{i}": {"title": "T", "rule": text} for i, text in enumerate(texts)}
    raw_sets = {name: sorted(codes) for name, codes in DEFINITIONS.condition_sets.items()}
    return [c.rule for c in parse_definitions({"condition_sets": raw_sets, "cohort": cohorts}).cohorts]


async def test_sql_evaluation_equals_the_python_evaluator(store_url: str) -> None:
    """Every rule shape, 400 random persons: the same members both ways (SQLite and PostgreSQL)."""
    rng = random.Random(16)
    people = [_person(rng, n) for n in range(400)]
    rules = _rules()
    python = Evaluator(NOW)
    expected = [sorted(f.person_id for f, _ in people if python.matches(rule, f)) for rule in rules]
    assert all(0 < len(e) < len(people) for e in expected[:2]), "the random world must split the simple rules"

    def evaluate(tx: Tx) -> list[list[str]]:
        for _, batch in people:
            apply_facts(tx, batch)
        evaluator = SqlEvaluator(tx, DEFINITIONS, NOW, [])
        try:
            return [evaluator.matching(rule) for rule in rules]
        finally:
            evaluator.close()

    async with open_store(store_url) as store:
        found = await store.write(evaluate)
    for rule, want, got in zip(rules, expected, found, strict=True):
        assert got == want, rule.as_json()


async def test_objectors_are_no_members_whatever_the_facts_hold(tmp_path: object) -> None:
    """Facts planted for objecting persons (a stale or tampered read model) never make them members: the
    evaluation leaves out every id it is told objects, golden or source."""
    rng = random.Random(5)
    people = [_person(rng, n) for n in range(60)]
    rule = Rule("age", minimum=0)
    everyone = sorted(f.person_id for f, _ in people if f.birth_date is not None and f.birth_date <= NOW.date())
    objecting = [everyone[0], next(iter(people[1][1].persons.values())).patient_ids[0]]  # type: ignore[union-attr]

    def evaluate(tx: Tx) -> tuple[list[str], list[str]]:
        for _, batch in people:
            apply_facts(tx, batch)
        open_ = SqlEvaluator(tx, DEFINITIONS, NOW, [])
        screened = SqlEvaluator(tx, DEFINITIONS, NOW, objecting)
        try:
            return open_.matching(rule), screened.matching(rule)
        finally:
            open_.close()
            screened.close()

    async with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        unscreened, screened = await store.write(evaluate)
    assert unscreened == everyone
    assert set(objecting) & set(unscreened), "the planted objectors must match the rule when not screened"
    assert not set(objecting) & set(screened)
    assert set(screened) == set(everyone) - set(objecting)
