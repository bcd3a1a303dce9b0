"""Re-clustering: evidence that connects two persons joins them whatever order the records came in; the
absorbed person id redirects to the survivor; review items follow the join and close when it answers them."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bcconnect.identity import (
    link_patients,
    list_reviews,
    merge,
    person_of,
    person_redirect,
)
from bcconnect.store import Store, open_store
from support.identity_patients import patient

pytestmark = pytest.mark.anyio

#: x and y are only a possible match (y's year of birth is one off, it moved, no NHS number); z agrees with
#: x on the NHS number (x's unverified) and with y on address and phone: z is the evidence that joins them
X = patient("x", ods="RL4", status="02", postcode="WV10 1AB", phone=None)
Y = patient("y", ods="RBK", nhs=None, given="Peggy", birth="1951-03-14", postcode="DY1 4AB", phone="07700900999")
Z = patient("z", ods="RNA", status="01", given="Peggy", postcode="DY1 4AB", phone="07700900999")


async def _link(store: Store, *patients: dict[str, Any]) -> None:
    for p in patients:
        ods = p["meta"]["tag"][0]["code"]
        await store.write(lambda tx, p=p, ods=ods: link_patients(tx, [p], ods_code=ods))


async def _persons(store: Store, *pids: str) -> list[str | None]:
    return [await store.read(lambda tx, pid=pid: person_of(tx, pid)) for pid in pids]


@pytest.mark.parametrize("order", list(itertools.permutations("xyz")), ids="".join)
async def test_every_arrival_order_gives_one_person(store_url: str, order: tuple[str, ...]) -> None:
    records = {"x": X, "y": Y, "z": Z}
    async with open_store(store_url) as store:
        await _link(store, *(records[k] for k in order))
        persons = await _persons(store, "x", "y", "z")
        assert len(set(persons)) == 1, persons
        assert await store.read(lambda tx: list_reviews(tx)) == []


async def test_the_absorbed_person_redirects_and_its_review_closes_by_the_join(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, X, Y)
        px, py = await _persons(store, "x", "y")
        assert px != py
        (item,) = await store.read(lambda tx: list_reviews(tx))
        assert (item.patient_id, item.person_id) == ("y", px)
        await _link(store, Z)
        survivor = (await _persons(store, "z"))[0]
        assert await _persons(store, "x", "y") == [survivor, survivor]
        absorbed = py if survivor == px else px
        assert await store.read(lambda tx: person_redirect(tx, absorbed)) == survivor
        assert await store.read(lambda tx: person_redirect(tx, survivor)) is None
        assert await store.read(lambda tx: list_reviews(tx)) == []
        (closed,) = await store.read(lambda tx: list_reviews(tx, status="resolved"))
        assert closed.review_id == item.review_id


async def test_a_review_pointing_at_a_person_emptied_by_a_merge_follows_the_survivor(store_url: str) -> None:
    async with open_store(store_url) as store:
        await _link(store, X, Y)
        (item,) = await store.read(lambda tx: list_reviews(tx))
        other = patient("o", ods="RL4", nhs="9990000026", given="Kwame", family="Mensah", birth="1980-05-05",
                        gender="male", postcode="B66 1AB", phone=None)  # fmt: skip
        await _link(store, other)
        # an A40 retires x into o: x's person is emptied, the question "is y that person?" now asks about o's
        await store.write(lambda tx: merge(tx, "x", "o", origin="a40"))
        (moved,) = await store.read(lambda tx: list_reviews(tx))
        assert moved.review_id == item.review_id
        assert moved.person_id == (await _persons(store, "o"))[0]


async def test_twins_are_never_joined_by_a_record_that_matches_both(store_url: str) -> None:
    async with open_store(store_url) as store:
        twin_a = patient("ta", ods="RL4", nhs="9990000018", given="Hassan", family="Ali", gender="male",
                         birth="2001-06-02")  # fmt: skip
        twin_b = patient("tb", ods="RL4", nhs="9990000026", given="Hussein", family="Ali", gender="male",
                         birth="2001-06-02", status="02")  # fmt: skip
        await _link(store, twin_a, twin_b)
        pa, pb = await _persons(store, "ta", "tb")
        assert pa != pb
        # a record with twin a's number and twin b's name: the twin guard keeps it from joining a to b
        confused = patient("tc", ods="RBK", nhs="9990000018", given="Hussein", family="Ali", gender="male",
                           birth="2001-06-02", status="03")  # fmt: skip
        await _link(store, confused)
        pa2, pb2 = await _persons(store, "ta", "tb")
        assert pa2 != pb2
