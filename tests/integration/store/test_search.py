"""Search semantics (FHIR R4 §3.1.1), parameter type by parameter type, on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import anyio
import orjson
import pytest

from bcconnect.errors import InvalidRequest, Unsupported
from bcconnect.search import parse_search
from bcconnect.store import (
    EverythingQuery,
    ResourceWrite,
    SearchPage,
    Store,
    Visibility,
    delete_resource,
    everything,
    everything_of,
    open_store,
    person_record_keys,
    put_resources,
    search,
)

pytestmark = pytest.mark.anyio
NHS = "https://fhir.nhs.uk/Id/nhs-number"
LOINC = "http://loinc.org"


def w(body: dict[str, Any], compartment: str | None = None) -> ResourceWrite:
    return ResourceWrite(body["resourceType"], body["id"], orjson.dumps(body), source="test", compartment=compartment)


def pat(pid: str, family: str, given: str, birth: str, gender: str, nhs: str, **extra: Any) -> ResourceWrite:
    return w(
        {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": NHS, "value": nhs}],
            "name": [{"family": family, "given": [given]}],
            "birthDate": birth,
            "gender": gender,
            **extra,
        },
        pid,
    )


def obs(oid: str, pid: str, code: str, when: Any, value: float, **extra: Any) -> ResourceWrite:
    effective = {"effectivePeriod": when} if isinstance(when, dict) else {"effectiveDateTime": when}
    return w(
        {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code}], "text": "Glucose level"},
            "subject": {"reference": f"Patient/{pid}"},
            "performer": [{"reference": "Practitioner/dr1"}],
            "valueQuantity": {
                "value": value,
                "unit": "mmol/L",
                "system": "http://unitsofmeasure.org",
                "code": "mmol/L",
            },
            **effective,
            **extra,
        },
        pid,
    )


DATA = [
    pat(
        "p1",
        "Smith",
        "Zoë",
        "1980-05-17",
        "female",
        "9000000009",
        generalPractitioner=[{"reference": "Practitioner/dr1"}],
    ),
    pat("p2", "Smithson", "Al", "1980", "male", "9000000017", meta={"tag": [{"system": "s", "code": "RL4"}]}),
    pat("p3", "O'Brien", "Ann", "1975-01-02", "female", "9000000025", meta={"profile": ["https://x/UKCore-Patient"]}),
    w({"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Jones"}]}),
    obs("o1", "p1", "2345-7", "2024-01-10T09:00:00Z", 5.4),
    obs("o2", "p1", "2345-7", "2024-02-10", 7.9),
    obs("o3", "p1", "8867-4", {"start": "2024-03-01", "end": "2024-03-05"}, 72),
    obs("o4", "p2", "2345-7", "2023-12-31T23:30:00+00:00", 4.0),
    w(
        {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}, "code": {"text": "Asthma"}},
        "p1",
    ),
]


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        await opened.write(lambda tx: put_resources(tx, DATA))
        yield opened


async def run(store: Store, rtype: str, params: list[tuple[str, str]], **kw: Any) -> SearchPage:
    query = parse_search(rtype, params)
    return await store.read(lambda tx: search(tx, query, visibility=Visibility.everything(), **kw))


async def ids(store: Store, rtype: str, *params: tuple[str, str]) -> list[str]:
    return sorted(r.id for r in (await run(store, rtype, list(params))).matches)


async def test_token_forms(store: Store) -> None:
    """code, system|code, |code, system| and :not."""
    assert await ids(store, "Patient", ("identifier", "9000000009")) == ["p1"]
    assert await ids(store, "Patient", ("identifier", f"{NHS}|9000000017")) == ["p2"]
    assert await ids(store, "Patient", ("identifier", "http://other|9000000017")) == []
    assert await ids(store, "Patient", ("identifier", f"{NHS}|")) == ["p1", "p2", "p3"]
    assert await ids(store, "Patient", ("gender", "|female")) == ["p1", "p3"]
    assert await ids(store, "Patient", ("gender:not", "female")) == ["p2"]
    assert await ids(store, "Observation", ("code", f"{LOINC}|8867-4,2345-7")) == ["o1", "o2", "o3", "o4"]


async def test_token_text_and_missing(store: Store) -> None:
    """:text matches the display text by prefix, case-insensitively; :missing looks for any value."""
    assert await ids(store, "Observation", ("code:text", "gluc")) == ["o1", "o2", "o3", "o4"]
    assert await ids(store, "Condition", ("code:text", "ASTH")) == ["c1"]
    assert await ids(store, "Patient", ("_tag:missing", "false")) == ["p2"]
    assert await ids(store, "Patient", ("_tag:missing", "true")) == ["p1", "p3"]


async def test_string_prefix_case_accents_exact_contains(store: Store) -> None:
    """Default string search: prefix, case and accent insensitive; :exact and :contains."""
    assert await ids(store, "Patient", ("family", "smith")) == ["p1", "p2"]
    assert await ids(store, "Patient", ("name", "zoe")) == ["p1"]
    assert await ids(store, "Patient", ("family:exact", "Smith")) == ["p1"]
    assert await ids(store, "Patient", ("family:exact", "smith")) == []
    assert await ids(store, "Patient", ("family:contains", "MITHS")) == ["p2"]
    assert await ids(store, "Patient", ("family", "o'b")) == ["p3"]


async def test_and_or(store: Store) -> None:
    """Commas OR, repetition ANDs."""
    assert await ids(store, "Patient", ("family", "smith,o'brien")) == ["p1", "p2", "p3"]
    assert await ids(store, "Patient", ("family", "smith"), ("gender", "male")) == ["p2"]


async def test_escaped_comma_is_part_of_the_value(store: Store) -> None:
    r"""``\,`` does not split the value."""
    assert await ids(store, "Patient", ("family", "smith\\,x")) == []


DATE_CASES = [
    ("1980", ["p1", "p2"]),
    ("1980-05", ["p1"]),
    ("eq1980-05-17", ["p1"]),
    ("ne1980", ["p3"]),
    ("gt1979", ["p1", "p2"]),
    ("lt1980", ["p3"]),
    ("ge1980-05-17", ["p1", "p2"]),  # p2's 1980 range goes beyond
    ("le1975-01-02", ["p3"]),
    ("sa1979", ["p1", "p2"]),
    ("eb1980-01-01", ["p3"]),
]


async def test_date_prefixes_over_partial_dates(store: Store) -> None:
    """Dates are ranges: 1980 covers the whole year; prefixes compare ranges."""
    for value, expected in DATE_CASES:
        assert await ids(store, "Patient", ("birthdate", value)) == expected, value


async def test_dates_with_times_zones_and_periods(store: Store) -> None:
    """A dateTime in another zone and a Period are compared as instants/ranges."""
    assert await ids(store, "Observation", ("date", "2024-01")) == ["o1"]
    assert await ids(store, "Observation", ("date", "2023-12-31")) == ["o4"]
    assert await ids(store, "Observation", ("date", "2024-03-03")) == []  # the period is wider than the day
    assert await ids(store, "Observation", ("date", "2024-03")) == ["o3"]
    assert await ids(store, "Observation", ("date", "ge2024-02-01"), ("date", "lt2024-03-02")) == ["o2", "o3"]
    # ap: within 10% of the distance from now (at least a day)
    assert "o1" in await ids(store, "Observation", ("date", "ap2024-01-10"))
    assert await ids(store, "Observation", ("date", "ap1995-01-01")) == []


async def test_reference_forms_and_chaining(store: Store) -> None:
    """id, Type/id, absolute URL, :Type, and one level of chaining."""
    assert await ids(store, "Observation", ("subject", "p1")) == ["o1", "o2", "o3"]
    assert await ids(store, "Observation", ("patient", "Patient/p2")) == ["o4"]
    assert await ids(store, "Observation", ("subject:Patient", "p2")) == ["o4"]
    assert await ids(store, "Observation", ("subject", "https://example.org/fhir/Patient/p2")) == ["o4"]
    assert await ids(store, "Observation", ("subject:Patient.identifier", f"{NHS}|9000000017")) == ["o4"]
    assert await ids(store, "Observation", ("patient.family", "smith")) == ["o1", "o2", "o3", "o4"]
    assert await ids(store, "Patient", ("general-practitioner.name", "jon")) == ["p1"]


async def test_quantity_prefixes(store: Store) -> None:
    """Numbers carry their precision; system and code must match when given."""
    assert await ids(store, "Observation", ("value-quantity", "5.4")) == ["o1"]
    assert await ids(store, "Observation", ("value-quantity", "5")) == ["o1"]  # 5 covers [4.5, 5.5)
    assert await ids(store, "Observation", ("value-quantity", "gt7|http://unitsofmeasure.org|mmol/L")) == ["o2", "o3"]
    assert await ids(store, "Observation", ("value-quantity", "le5.4||mmol/L")) == ["o1", "o4"]
    assert await ids(store, "Observation", ("value-quantity", "ap70")) == ["o3"]


async def test_common_parameters(store: Store) -> None:
    """_id, _tag, _profile and _lastUpdated work on every type."""
    assert await ids(store, "Patient", ("_id", "p1,p3")) == ["p1", "p3"]
    assert await ids(store, "Patient", ("_tag", "s|RL4")) == ["p2"]
    assert await ids(store, "Patient", ("_profile", "https://x/UKCore-Patient")) == ["p3"]
    assert await ids(store, "Patient", ("_lastUpdated", "gt2000-01-01")) == ["p1", "p2", "p3"]
    assert await ids(store, "Patient", ("_lastUpdated", "lt2000-01-01")) == []


async def test_deleted_resources_are_not_found(store: Store) -> None:
    """A deletion removes the resource from searches."""
    await store.write(lambda tx: delete_resource(tx, "Patient", "p1"))
    assert await ids(store, "Patient", ("family", "smith")) == ["p2"]


async def test_sort_several_keys(store: Store) -> None:
    """_sort=-birthdate,family: descending date, then name; missing values last."""
    page = await run(store, "Patient", [("_sort", "gender,-birthdate")])
    assert [r.id for r in page.matches] == ["p1", "p3", "p2"]
    page = await run(store, "Observation", [("_sort", "-date")])
    assert [r.id for r in page.matches] == ["o3", "o2", "o1", "o4"]


async def test_count_total_and_paging_are_snapshot_consistent(store: Store) -> None:
    """Page 2 reads at page 1's t: resources written in between do not shift or appear."""
    first = await run(store, "Observation", [("_count", "2"), ("_sort", "date")])
    assert [r.id for r in first.matches] == ["o4", "o1"]
    assert first.total == 4
    assert first.has_more
    early = obs("o0", "p1", "2345-7", "2000-01-01", 1.0)  # would sort first
    await store.write(lambda tx: put_resources(tx, [early]))
    await store.write(lambda tx: delete_resource(tx, "Observation", "o2"))
    second = await run(store, "Observation", [("_count", "2"), ("_sort", "date")], at=first.t, offset=2)
    assert [r.id for r in second.matches] == ["o2", "o3"]
    assert not second.has_more
    fresh = await run(store, "Observation", [("_count", "10"), ("_sort", "date")])
    assert [r.id for r in fresh.matches] == ["o0", "o4", "o1", "o3"]


async def test_summary_count_only_counts(store: Store) -> None:
    """_count=0 returns the total and no resources."""
    page = await run(store, "Patient", [("_count", "0")])
    assert page.matches == []
    assert page.total == 3


async def test_include_and_revinclude(store: Store) -> None:
    """_include follows references from matches; _revinclude finds resources pointing at them."""
    page = await run(store, "Observation", [("_id", "o1"), ("_include", "Observation:subject")])
    assert [(r.resource_type, r.id) for r in page.included] == [("Patient", "p1")]
    page = await run(store, "Patient", [("_id", "p1"), ("_revinclude", "Condition:subject")])
    assert [(r.resource_type, r.id) for r in page.included] == [("Condition", "c1")]
    page = await run(
        store,
        "Condition",
        [("_id", "c1"), ("_include", "Condition:subject"), ("_include:iterate", "Patient:general-practitioner")],
    )
    assert sorted(r.id for r in page.included) == ["dr1", "p1"]


async def test_everything(store: Store) -> None:
    """$everything: the compartment plus referenced practitioners; _type and paging."""
    page = await store.read(
        lambda tx: everything(tx, EverythingQuery("p1", count=100), visibility=Visibility.everything())
    )
    assert sorted(f"{r.resource_type}/{r.id}" for r in page.matches) == [
        "Condition/c1", "Observation/o1", "Observation/o2", "Observation/o3", "Patient/p1", "Practitioner/dr1",
    ]  # fmt: skip
    page = await store.read(
        lambda tx: everything(
            tx, EverythingQuery("p1", types=("Observation",), count=2), visibility=Visibility.everything()
        )
    )
    assert page.total == 3
    assert page.has_more


async def test_the_bodyless_record_read_finds_the_rows_the_full_read_finds(store: Store) -> None:
    """``person_record_keys`` (the cold first page's read: the compartment once, references followed from it) gives
    the same versions as the full read under every screen and every $everything parameter, at a pinned time too."""
    first_t = await store.read(lambda tx: everything(tx, EverythingQuery("p1", count=0), visibility=Visibility()).t)
    later = obs("o5", "p1", "2345-7", "2024-04-01", 6.1)
    await store.write(partial(put_resources, writes=[later]))
    await store.write(lambda tx: delete_resource(tx, "Observation", "o3"))
    jan = 1_704_067_200_000  # 2024-01-01T00:00:00Z in ms
    feb = 1_706_745_600_000  # 2024-02-01
    restricted = Visibility(
        restricted_patients=frozenset({"p1"}),
        restricted_params={"Observation": frozenset({"performer"}), "Patient": frozenset({"general-practitioner"})},
    )
    queries = [
        EverythingQuery("p1"),
        EverythingQuery("p1", types=("Observation", "Practitioner")),
        EverythingQuery("p1", types=("Practitioner",)),
        EverythingQuery("p1", start=feb),
        EverythingQuery("p1", start=jan, end=feb),
        EverythingQuery("p1", since="2000-01-01T00:00:00Z"),
    ]
    screens = [
        Visibility(),
        Visibility(types=frozenset({"Observation", "Patient"})),
        Visibility(hidden_patients=frozenset({"p2"})),
        restricted,
    ]
    found: dict[tuple[int, int, int | None], set[str]] = {}
    for qi, query in enumerate(queries):
        for si, screen in enumerate(screens):
            for at in (None, first_t):

                def both(
                    tx: Any, query: EverythingQuery = query, screen: Visibility = screen, at: int | None = at
                ) -> Any:
                    t_full, full = everything_of(tx, query, ["p1", "p2"], visibility=screen, at=at)
                    t_keys, keys = person_record_keys(
                        tx, query, ["p1", "p2"], visibility=screen, at=at, body_types=("Observation",)
                    )
                    return t_full, t_keys, full, keys

                t_full, t_keys, full, keys = await store.read(both)
                assert t_keys == t_full
                got = sorted(f"{rtype}/{rid}" for _, rtype, rid, *_ in keys)
                assert got == sorted(f"{r.resource_type}/{r.id}" for r in full), (query, screen, at)
                found[(qi, si, at)] = set(got)
    # the cases differ where they should, so agreeing is not agreeing on one answer
    assert "Practitioner/dr1" in found[(0, 0, None)]
    assert "Practitioner/dr1" not in found[(0, 3, None)]  # a restricted patient's references lead nowhere
    assert "Observation/o3" in found[(0, 0, first_t)]
    assert "Observation/o3" not in found[(0, 0, None)]
    assert "Observation/o5" not in found[(0, 0, first_t)]
    assert "Observation/o4" in found[(0, 0, None)]
    assert "Observation/o4" not in found[(0, 2, None)]
    assert found[(3, 0, None)] != found[(0, 0, None)]


def test_unknown_parameters_are_refused_unless_lenient() -> None:
    """An unknown parameter is Unsupported; lenient handling lists it as ignored."""
    with pytest.raises(Unsupported):
        parse_search("Patient", [("shoe-size", "9")])
    assert parse_search("Patient", [("shoe-size", "9")], lenient=True).ignored == ("shoe-size",)
    with pytest.raises(InvalidRequest):
        parse_search("Patient", [("birthdate", "yesterday")])
    with pytest.raises(Unsupported):
        parse_search("Patient", [("family:fuzzy", "x")])


async def test_paging_while_ingest_writes_concurrently(store: Store) -> None:
    """A writer task adds and deletes observations while a reader pages: the pages are exactly the snapshot."""
    query = parse_search("Observation", [("_count", "1"), ("_sort", "date")])
    first = await store.read(lambda tx: search(tx, query, visibility=Visibility.everything()))
    expected = ["o4", "o1", "o2", "o3"]
    seen = [r.id for r in first.matches]
    writes_done = anyio.Event()

    async def ingest() -> None:
        for i in range(20):
            early = obs(f"new{i}", "p1", "2345-7", f"19{50 + i}-01-01", 1.0)  # would all sort first
            await store.write(partial(put_resources, writes=[early]))
        await store.write(lambda tx: delete_resource(tx, "Observation", "o3"))
        writes_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ingest)
        offset = 1
        while offset < 4:
            page = await store.read(
                partial(search, query=query, at=first.t, offset=offset, visibility=Visibility.everything())
            )
            seen += [r.id for r in page.matches]
            offset += 1
        await writes_done.wait()
    assert seen == expected
    later = await store.read(lambda tx: search(tx, query, at=first.t, offset=3, visibility=Visibility.everything()))
    assert [r.id for r in later.matches] == ["o3"]  # the deleted one is still in the pinned snapshot
