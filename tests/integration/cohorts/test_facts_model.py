"""The cohort facts read model: kept incrementally, it equals one rebuilt from scratch after every kind of change,
its cohorts equal the whole-view oracle, and it is no way round the objection register.

A small four-trust world of its own (these tests change it): a new emergency admission, a Condition resolved and
another entered in error, a merge of two persons and its undoing, a source record deleted — after each, the
refreshed model equals a rebuilt one row for row (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import orjson
import pytest

from bcconnect.cohorts import Cohorts, Evaluator, cohort_member_person_ids
from bcconnect.cohorts._facts import apply_facts, facts_of, snapshot
from bcconnect.fhir.constants import ADMISSION_METHOD_EXTENSION
from bcconnect.identity import merge, unmerge
from bcconnect.security import add_objection, remove_objection
from bcconnect.store import ResourceWrite, Tx, delete_resource, put_resources, read_current
from bcconnect_sandbox import SandboxSettings
from support.sandbox_world import NO_IDENTITY_NOISE

from .conftest import CohortWorld, postgres_world, synced

pytestmark = pytest.mark.anyio

SMALL = SandboxSettings(persons=120, seed=23, noise=NO_IDENTITY_NOISE, density=0)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def small_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CohortWorld]:
    tmp = tmp_path_factory.mktemp("facts-world")
    if request.param == "sqlite":
        async with synced(f"sqlite:///{tmp / 'store.db'}", tmp, SMALL) as world:
            yield world
    else:
        async with postgres_world(tmp, SMALL) as world:
            yield world


async def _facts(world: CohortWorld) -> dict[str, list[tuple[object, ...]]]:
    return await world.store.read(snapshot)


async def _refreshed_equals_rebuilt(world: CohortWorld, step: str) -> dict[str, list[tuple[object, ...]]]:
    facts = Cohorts(world.view).facts
    await facts.refresh()
    incremental = await _facts(world)
    await facts.rebuild()
    rebuilt = await _facts(world)
    for table in rebuilt:
        assert incremental[table] == rebuilt[table], f"after {step}: {table} differs from a rebuild"
    return rebuilt


def _sources(facts: dict[str, list[tuple[object, ...]]]) -> dict[str, list[str]]:
    """Person → its source Patient ids, from the model."""
    out: dict[str, list[str]] = {}
    for patient, person in facts["patient"]:
        if patient != person:
            out.setdefault(str(person), []).append(str(patient))
    return out


async def _rewrite(world: CohortWorld, resource_type: str, resource_id: str, change: dict[str, Any]) -> None:
    def write(tx: Tx) -> None:
        stored = read_current(tx, resource_type, resource_id)
        assert stored is not None
        assert stored.body is not None
        body = {**orjson.loads(stored.body), **change}
        put_resources(tx, [ResourceWrite(resource_type, resource_id, orjson.dumps(body), "test", stored.compartment)])

    await world.store.write(write)


async def _oracle_members(world: CohortWorld, cohort: str) -> list[str]:
    cohorts = Cohorts(world.view)
    definition = cohorts.definitions.cohort(cohort)
    assert definition is not None
    collector = await cohorts.collect()
    at = Evaluator(world.now)
    return sorted(p for p, f in collector.persons.items() if at.matches(definition.rule, f))


async def test_incremental_facts_equal_a_rebuild_after_every_kind_of_change(small_world: CohortWorld) -> None:
    """Admission, resolved and entered-in-error Conditions, merge, unmerge, a deletion: refreshed == rebuilt, and
    the cohorts computed over the model equal the whole-view oracle at the end."""
    world = small_world
    base = await _refreshed_equals_rebuilt(world, "the first build")
    assert base["person"]
    assert base["condition"]
    assert base["encounter"]
    sources = _sources(base)
    persons = sorted(sources)

    # a new emergency admission at a trust, for someone with no stays yet
    no_stays = {str(r[1]) for r in base["encounter"]}
    patient = next(s for p in persons for s in sources[p] if s not in no_stays)
    start = world.now - timedelta(days=10)
    admission = {
        "resourceType": "Encounter", "id": "facts-test-admission", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": f"Patient/{patient}"},
        "period": {"start": start.isoformat().replace("+00:00", "Z"),
                   "end": (start + timedelta(days=2)).isoformat().replace("+00:00", "Z")},
        "hospitalization": {"extension": [{"url": ADMISSION_METHOD_EXTENSION,
                                           "valueCodeableConcept": {"coding": [{"code": "21"}]}}]},
    }  # fmt: skip
    await world.store.write(
        lambda tx: put_resources(
            tx, [ResourceWrite("Encounter", "facts-test-admission", orjson.dumps(admission), "test", patient)]
        )
    )
    after = await _refreshed_equals_rebuilt(world, "a new admission")
    assert any(r[0] == "facts-test-admission" for r in after["encounter"])

    # a Condition resolved, another entered in error: both stop counting
    counted = sorted({str(r[0]) for r in after["condition"]})
    resolved, mistaken = counted[0], counted[1]
    await _rewrite(world, "Condition", resolved, {"clinicalStatus": {"coding": [{"code": "resolved"}]}})
    await _rewrite(world, "Condition", mistaken, {"verificationStatus": {"coding": [{"code": "entered-in-error"}]}})
    after = await _refreshed_equals_rebuilt(world, "a resolved and a mistaken Condition")
    assert not {resolved, mistaken} & {str(r[0]) for r in after["condition"]}

    # two persons merged (one trust record into another person), then the merge undone
    first, second = persons[1], persons[2]
    moved, into = sources[first][0], sources[second][0]
    await world.store.write(lambda tx: merge(tx, moved, into, origin="manual", actor="facts-test"))
    after = await _refreshed_equals_rebuilt(world, "a merge")
    owner = dict(after["patient"])
    assert owner[moved] == owner[into]
    await world.store.write(lambda tx: unmerge(tx, moved, actor="facts-test"))
    after = await _refreshed_equals_rebuilt(world, "an unmerge")
    owner = dict(after["patient"])
    assert owner[moved] != owner[into]

    # a trust deletes a record
    gone = sorted(str(r[0]) for r in after["encounter"])[0]
    await world.store.write(lambda tx: delete_resource(tx, "Encounter", gone))
    after = await _refreshed_equals_rebuilt(world, "a deleted source record")
    assert gone not in {str(r[0]) for r in after["encounter"]}

    await Cohorts(world.view).compute(as_of=world.now)
    for cohort in ("ltc-3plus", "emergency-3plus", "ae-repeat"):
        assert await cohort_member_person_ids(world.view, cohort) == await _oracle_members(world, cohort), cohort


async def test_an_objection_removes_the_persons_facts_and_a_withdrawal_brings_them_back(
    small_world: CohortWorld,
) -> None:
    """Objecting changes no clinical record, so no cursor would notice it: the next computation still deletes the
    person's facts and leaves them out; withdrawing reads them again in full (equal to a rebuild)."""
    world = small_world
    cohorts = Cohorts(world.view)
    await cohorts.compute(as_of=world.now)
    members = await cohort_member_person_ids(world.view, "ltc-3plus")
    assert members
    person = members[0]
    before = await _facts(world)
    nhs = next(str(r[1]) for r in before["person"] if r[0] == person)
    ids = {str(p) for p, owner in before["patient"] if owner == person}
    await world.store.write(lambda tx: add_objection(tx, nhs, note="facts test"))
    try:
        await cohorts.compute(as_of=world.now)
        assert person not in (await cohort_member_person_ids(world.view, "ltc-3plus") or [])
        held = await _facts(world)
        assert not any(r[0] == person for r in held["person"])
        assert not any(str(r[0]) in ids or str(r[1]) == person for r in held["patient"])
        assert not any(str(r[2]) in ids for r in held["condition"])
        assert not any(str(r[1]) in ids for r in held["encounter"])
    finally:
        await world.store.write(lambda tx: remove_objection(tx, nhs))
    await cohorts.compute(as_of=world.now)
    assert person in (await cohort_member_person_ids(world.view, "ltc-3plus") or [])
    assert await _facts(world) == before


async def test_facts_planted_for_an_objector_never_make_a_member(small_world: CohortWorld) -> None:
    """A read model holding an objector's facts (stale, or written round the view) is no way round the register:
    the computation deletes them and leaves the objector out."""
    world = small_world
    cohorts = Cohorts(world.view)
    await cohorts.compute(as_of=world.now)
    members = await cohort_member_person_ids(world.view, "ltc-3plus")
    assert members
    person = members[-1]
    facts = await _facts(world)
    nhs = next(str(r[1]) for r in facts["person"] if r[0] == person)
    ids = [str(p) for p, owner in facts["patient"] if owner == person]
    # the person's whole record, read before the objection, as a bypass would hold it
    planted = facts_of(await world.view.population_records(ids), cohorts.places)
    assert planted.persons
    assert planted.conditions
    await world.store.write(lambda tx: add_objection(tx, nhs, note="planted facts test"))
    try:
        await cohorts.compute(as_of=world.now)
        await world.store.write(lambda tx: apply_facts(tx, planted))
        assert any(r[0] == person for r in (await _facts(world))["person"]), "the facts were planted"
        await cohorts.compute(as_of=world.now)
        assert person not in (await cohort_member_person_ids(world.view, "ltc-3plus") or [])
        assert not any(r[0] == person for r in (await _facts(world))["person"])
    finally:
        await world.store.write(lambda tx: remove_objection(tx, nhs))
        await cohorts.compute(as_of=world.now)
