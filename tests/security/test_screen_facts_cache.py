"""The screen's cached facts (objectors, persons) follow writes made by another process, on both dialects.

Two stores opened on one database stand for two API processes: one serves requests with a warm
:class:`ScreenFacts` cache, the other records an objection or re-links a person. The very next screen built
by the first must honour the change. Removing either bump (the objection register's or the alias table's)
leaves the first process's cache stale, and these tests fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM, V3_CONFIDENTIALITY_SYSTEM
from bcconnect.security import Screen, ScreenFacts, add_objection, remove_objection
from bcconnect.store import ResourceWrite, Store, Tx, alias_closure, open_store, put_resources, set_aliases

pytestmark = pytest.mark.anyio

OBJECTOR_NHS = "9990000026"


@dataclass(frozen=True)
class _Clinician:
    allow_sensitive: bool = False


def _related(tx: Tx, patient_id: str) -> list[str]:
    return alias_closure(tx, "Patient", [patient_id])[patient_id]


def _patient(pid: str, nhs: str, *, restricted: bool = False) -> ResourceWrite:
    body: dict[str, object] = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
    }
    if restricted:
        body["meta"] = {"security": [{"system": V3_CONFIDENTIALITY_SYSTEM, "code": "R"}]}
    return ResourceWrite("Patient", pid, orjson.dumps(body), "test", pid)


async def _screen(store: Store, facts: ScreenFacts) -> Screen:
    return await store.read(lambda tx: Screen.build(tx, _Clinician(), related=_related, facts=facts))


async def test_an_objection_recorded_by_another_process_is_honoured_on_the_next_request(store_url: str) -> None:
    async with open_store(store_url) as serving, open_store(store_url) as other:
        await other.write(lambda tx: put_resources(tx, [_patient("a1", OBJECTOR_NHS), _patient("b1", "9990000018")]))
        facts = ScreenFacts(_related)
        assert (await _screen(serving, facts)).visibility.hidden_patients == frozenset()
        await _screen(serving, facts)  # warm: the register is cached now

        await other.write(lambda tx: add_objection(tx, OBJECTOR_NHS))
        assert (await _screen(serving, facts)).visibility.hidden_patients == {"a1"}

        await other.write(lambda tx: remove_objection(tx, OBJECTOR_NHS))
        assert (await _screen(serving, facts)).visibility.hidden_patients == frozenset()


async def test_a_person_relinked_by_another_process_widens_the_hidden_set_on_the_next_request(
    store_url: str,
) -> None:
    async with open_store(store_url) as serving, open_store(store_url) as other:
        await other.write(
            lambda tx: put_resources(
                tx,
                [
                    _patient("a1", OBJECTOR_NHS),
                    _patient("a2", "9990000018"),
                    _patient("r1", "9990000034", restricted=True),
                ],
            )
        )
        await other.write(lambda tx: add_objection(tx, OBJECTOR_NHS))
        facts = ScreenFacts(_related)
        first = await _screen(serving, facts)
        assert first.visibility.hidden_patients == {"a1"}
        assert first.visibility.restricted_patients == {"r1"}
        await _screen(serving, facts)
        assert facts.hits >= 2  # the second request answered the persons from the cache

        # identity decides a1 and a2 are one person (golden g1), and so are r1 and r2, in the other process
        await other.write(lambda tx: set_aliases(tx, "Patient", "g1", ["a1", "a2"]))
        await other.write(lambda tx: set_aliases(tx, "Patient", "g2", ["r1", "r2"]))
        second = await _screen(serving, facts)
        assert second.visibility.hidden_patients == {"a1", "a2", "g1"}
        assert second.visibility.restricted_patients == {"r1", "r2", "g2"}


async def test_the_cached_screen_equals_the_uncached_one(store_url: str) -> None:
    """The cache changes how facts are read, never what they are."""
    async with open_store(store_url) as store:
        await store.write(
            lambda tx: put_resources(tx, [_patient("a1", OBJECTOR_NHS), _patient("r1", "9990000034", restricted=True)])
        )
        await store.write(lambda tx: add_objection(tx, OBJECTOR_NHS))
        await store.write(lambda tx: set_aliases(tx, "Patient", "g1", ["a1", "a9"]))
        facts = ScreenFacts(_related)
        for _ in range(2):
            cached = await _screen(store, facts)
            plain = await store.read(lambda tx: Screen.build(tx, _Clinician(), related=_related))
            assert cached.visibility == plain.visibility


async def test_alias_lookups_answered_from_the_snapshot_follow_a_relink_by_another_process(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request's alias lookups (search widening, re-pointing) are answered from the process's snapshot of the
    alias table once learnt, and a re-link committed elsewhere is seen by the very next request."""
    from bcconnect.store import _alias

    asked: list[str] = []
    original = _alias._canonical_ids

    def counting(tx: Tx, res_type: str, wanted: list[str]) -> dict[str, str]:
        asked.extend(wanted)
        return original(tx, res_type, wanted)

    monkeypatch.setattr(_alias, "_canonical_ids", counting)
    async with open_store(store_url) as serving, open_store(store_url) as other:
        await other.write(lambda tx: put_resources(tx, [_patient("a1", "9990000018"), _patient("a2", "9990000042")]))
        facts = ScreenFacts(_related)

        def person_of_a1(tx: Tx) -> list[str]:
            Screen.build(tx, _Clinician(), related=_related, facts=facts)
            return alias_closure(tx, "Patient", ["a1"])["a1"]

        assert await serving.read(person_of_a1) == ["a1"]
        asked.clear()
        assert await serving.read(person_of_a1) == ["a1"]
        assert asked == [], "the second request learns nothing new: no alias query"

        await other.write(lambda tx: set_aliases(tx, "Patient", "g1", ["a1", "a2"]))
        assert await serving.read(person_of_a1) == ["a1", "a2", "g1"]
