"""Linking inside the store transaction: persons, review, steward decisions, merges and unmerges."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from bcconnect.errors import ConflictError
from bcconnect.fhir.constants import NHS_NUMBER_SYSTEM, PERSON_ID_SYSTEM, mrn_system
from bcconnect.identity import (
    LinkSource,
    LinkState,
    accept_review,
    evaluate,
    explain,
    link_patients,
    list_reviews,
    match_patient,
    merge,
    person_identifiers,
    person_of,
    person_patients,
    reject_review,
    unmerge,
)
from bcconnect.identity._db import Link, links_of, set_link
from bcconnect.store import Store, Tx, open_store
from support.identity_patients import patient
from support.identity_population import population

pytestmark = pytest.mark.anyio


async def _link(store: Store, ods: str, *patients: dict[str, Any]) -> None:
    await store.write(lambda tx: link_patients(tx, list(patients), ods_code=ods))


async def _person(store: Store, pid: str) -> str | None:
    return await store.read(lambda tx: person_of(tx, pid))


async def test_one_person_across_trusts_and_a_stranger_apart(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, "RL4", patient("a", ods="RL4"))
        await _link(store, "RBK", patient("b", ods="RBK", nhs=None, phone=None))
        await _link(
            store,
            "RNA",
            patient(
                "c",
                ods="RNA",
                nhs="9990000026",
                given="Delroy",
                family="Campbell",
                birth="1970-01-02",
                gender="male",
                postcode="DY1 4AB",
                phone=None,
            ),
        )
        a, b, c = [await _person(store, p) for p in "abc"]
        assert a is not None
        assert a == b
        assert c not in (None, a)
        ids = await store.read(lambda tx: person_identifiers(tx, a))
        assert (PERSON_ID_SYSTEM, a) in ids
        assert (NHS_NUMBER_SYSTEM, "9990000018") in ids
        assert (mrn_system("RBK"), "MB") in ids
        assert sorted(await store.read(lambda tx: person_patients(tx, a))) == ["a", "b"]


async def test_different_verified_nhs_numbers_never_link(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, "RL4", patient("a"))
        await _link(store, "RXK", patient("b", ods="RXK", nhs="9990000026"))
        assert await _person(store, "a") != await _person(store, "b")


async def test_review_accept_is_manual_and_survives_relinking(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, "RL4", patient("a"))
        moved = patient("b", ods="RNA", nhs=None, postcode="DY1 4AB", phone="07700900999")
        await _link(store, "RNA", moved)
        reviews = await store.read(lambda tx: list_reviews(tx))
        assert [(r.patient_id, r.kind) for r in reviews] == [("b", "POSSIBLE_MATCH")]
        assert await _person(store, "b") != await _person(store, "a")
        await store.write(lambda tx: accept_review(tx, reviews[0].review_id, actor="steward1", note="same GP"))
        assert await _person(store, "b") == await _person(store, "a")
        await _link(store, "RNA", moved)  # the record arrives again: the steward's link stands
        links = await store.read(lambda tx: links_of(tx, "b"))
        match = [lk for lk in links if lk.state is LinkState.MATCH]
        assert len(match) == 1
        assert match[0].source is LinkSource.MANUAL
        assert await store.read(lambda tx: list_reviews(tx)) == []
        why = await store.read(lambda tx: explain(tx, "b"))
        assert [a for _, a, *_ in why.history].count("set") >= 2
        assert why.comparisons
        assert why.comparisons[0].right.patient_id == "a"


async def test_review_reject_is_never_proposed_again(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, "RL4", patient("a"))
        moved = patient("b", ods="RNA", nhs=None, postcode="DY1 4AB", phone="07700900999")
        await _link(store, "RNA", moved)
        (item,) = await store.read(lambda tx: list_reviews(tx))
        await store.write(lambda tx: reject_review(tx, item.review_id, actor="steward1"))
        await _link(store, "RNA", moved)
        assert await store.read(lambda tx: list_reviews(tx)) == []
        decided = await store.read(lambda tx: list_reviews(tx, status="rejected"))
        assert [d.decided_by for d in decided] == ["steward1"]


async def test_replaced_by_redirects_and_withdrawing_it_unmerges(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, "RL4", patient("keep", mrn="K1"))
        other = patient(
            "gone",
            mrn="G1",
            nhs=None,
            given="Kwame",
            family="Mensah",
            birth="1980-05-05",
            postcode="B66 1AB",
            phone=None,
            gender="male",
        )
        await _link(store, "RL4", other)
        before = await _person(store, "gone")
        assert before != await _person(store, "keep")
        merged = {**other, "link": [{"other": {"reference": "Patient/keep"}, "type": "replaced-by"}]}
        await _link(store, "RL4", merged)
        links = await store.read(lambda tx: links_of(tx, "gone"))
        assert [(lk.state, lk.person_id) for lk in links] == [(LinkState.REDIRECT, await _person(store, "keep"))]
        await _link(store, "RL4", other)  # the trust undid the merge
        assert await _person(store, "gone") == before


async def test_a40_merge_moves_links_and_unmerge_restores_them(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, "RBK", patient("x", ods="RBK", mrn="X1"))
        await _link(
            store,
            "RBK",
            patient(
                "y",
                ods="RBK",
                mrn="Y1",
                nhs="9990000026",
                given="Joan",
                birth="1940-02-02",
                postcode="WS1 1AA",
                phone=None,
            ),
        )
        y_before = await _person(store, "y")
        await store.write(lambda tx: merge(tx, "y", "x", origin="A40"))
        assert await _person(store, "y") == await _person(store, "x")
        await store.write(lambda tx: unmerge(tx, "y", actor="steward1"))
        assert await _person(store, "y") == y_before
        with pytest.raises(ConflictError):
            await store.write(lambda tx: unmerge(tx, "y", actor="steward1"))


async def test_a_second_match_for_one_record_is_refused_by_the_database(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, "RL4", patient("a"))

        def second(tx: Tx) -> None:
            set_link(
                tx, Link("a", "someone-else", LinkState.MATCH, LinkSource.AUTO, None, "t", "v", "now"), actor="test"
            )

        with pytest.raises(ConflictError):
            await store.write(second)
        assert len([lk for lk in await store.read(lambda tx: links_of(tx, "a")) if lk.state is LinkState.MATCH]) == 1


async def test_concurrent_linkers_of_one_person_agree(store_url: str) -> None:
    """Two trusts' pages linked at the same time: the records still end up in one person."""
    async with open_store(store_url) as store:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_link, store, "RL4", patient("a", ods="RL4"))
            tg.start_soon(_link, store, "RXK", patient("b", ods="RXK"))
        assert await _person(store, "a") == await _person(store, "b")


async def test_evaluate_against_ground_truth(store_url: str) -> None:
    records = list(population(150, seed=5))
    async with open_store(store_url) as store:
        for ods in ("RL4", "RBK", "RNA", "RXK"):
            await _link(store, ods, *(r.patient for r in records if r.ods_code == ods))
        truth = [(r.ods_code, r.patient["id"], r.person_id) for r in records]
        metrics = await store.read(lambda tx: evaluate(tx, truth))
    assert metrics.records == len(records)
    assert metrics.precision >= 0.999
    assert metrics.recall >= 0.97


async def test_match_operation_grades_candidates(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, "RL4", patient("a"))
        await _link(
            store,
            "RBK",
            patient(
                "z",
                ods="RBK",
                nhs="9990000026",
                given="Kwame",
                family="Mensah",
                birth="1980-05-05",
                gender="male",
                postcode="B66 1AB",
                phone=None,
            ),
        )
        person = await _person(store, "a")
        by_nhs = await store.read(lambda tx: match_patient(tx, patient("q")))
        assert [(c.person_id, c.grade, c.score) for c in by_nhs] == [(person, "certain", 1.0)]
        no_nhs = await store.read(lambda tx: match_patient(tx, patient("q", nhs=None)))
        assert no_nhs[0].grade == "probable"
        assert 0.5 < no_nhs[0].score < 1.0
        moved = patient("q", nhs=None, postcode="DY1 4AB", phone="07700900999")
        assert [c.grade for c in await store.read(lambda tx: match_patient(tx, moved))] == ["possible"]
        assert await store.read(lambda tx: match_patient(tx, moved, only_certain=True)) == []


async def test_a_verified_record_joins_two_unverified_persons_with_its_number(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, "RL4", patient("x", ods="RL4", status="02"))
        await _link(store, "RBK", patient("y", ods="RBK", status="03"))
        assert await _person(store, "x") != await _person(store, "y")  # both unverified: review only
        assert len(await store.read(lambda tx: list_reviews(tx))) == 1
        await _link(store, "RNA", patient("z", ods="RNA", status="01"))
        assert await _person(store, "x") == await _person(store, "y") == await _person(store, "z")
        assert await store.read(lambda tx: list_reviews(tx)) == []


async def test_persons_holding_two_verified_numbers_are_never_joined(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, "RL4", patient("x", ods="RL4", status="01"))
        # same demographics, no NHS number: joins x's person by score
        await _link(store, "RBK", patient("w", ods="RBK", nhs=None))
        await _link(store, "RXK", patient("v", ods="RXK", nhs="9990000026", status="01"))
        assert await _person(store, "x") != await _person(store, "v")


async def test_a_merged_record_follows_its_survivor_when_a_steward_moves_it(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, "RL4", patient("a"))
        moved = patient("b", ods="RNA", nhs=None, postcode="DY1 4AB", phone="07700900999")
        await _link(store, "RNA", moved)
        retired = patient("r", ods="RNA", nhs=None, given="Peggy", postcode="DY1 4AB", phone=None)
        retired["link"] = [{"other": {"reference": "Patient/b"}, "type": "replaced-by"}]
        await _link(store, "RNA", retired)
        assert await _person(store, "r") == await _person(store, "b")
        (item,) = [r for r in await store.read(lambda tx: list_reviews(tx)) if r.patient_id == "b"]
        await store.write(lambda tx: accept_review(tx, item.review_id, actor="steward1"))
        assert await _person(store, "r") == await _person(store, "b") == await _person(store, "a")


async def test_the_same_trust_and_mrn_is_the_same_source_record(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, "RBK", patient("old-id", ods="RBK", mrn="WK1"))
        # the feed re-keyed the record: new id, same MRN, demographics too different to match on their own
        await _link(
            store,
            "RBK",
            patient(
                "new-id",
                ods="RBK",
                mrn="WK1",
                nhs=None,
                given="Kwame",
                family="Mensah",
                birth="1980-05-05",
                postcode="B66 1AB",
                phone=None,
                gender="male",
            ),
        )
        assert await _person(store, "new-id") == await _person(store, "old-id")
        (link,) = await store.read(lambda tx: links_of(tx, "new-id"))
        assert link.rule == "same-trust-mrn"
