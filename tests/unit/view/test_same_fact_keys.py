"""Same-fact keys kept per version give exactly the collapse the view computes from the JSON itself."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from bcconnect.fhir.constants import SOURCE_ORG_TAG_SYSTEM
from bcconnect.store import RecordKey, StoredResource
from bcconnect.view._dedupe import FACT_TYPES, collapse_keyed, collapse_same_facts, fact_key, fold_others
from bcconnect.view._person import person_index

PRIORITY = ("RL4", "RBK")


def _stored(rtype: str, rid: str, body: dict[str, Any]) -> StoredResource:
    return StoredResource(rtype, rid, 1, "2026-01-01T00:00:00.000Z", False, orjson.dumps(body), 1, "p")


def _condition(
    rid: str, ods: str | None, code: str, onset: str, security: list[dict[str, str]] | None = None
) -> StoredResource:
    meta: dict[str, Any] = {"tag": [{"system": SOURCE_ORG_TAG_SYSTEM, "code": ods}] if ods else []}
    if security:
        meta["security"] = security
    body = {"resourceType": "Condition", "id": rid, "meta": meta, "onsetDateTime": onset,
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]}}  # fmt: skip
    return _stored("Condition", rid, body)


def _observation(rid: str, ods: str, value: int) -> StoredResource:
    body = {"resourceType": "Observation", "id": rid, "meta": {"tag": [{"system": SOURCE_ORG_TAG_SYSTEM, "code": ods}]},
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
            "effectiveDateTime": "2025-01-01T10:00:00Z", "valueQuantity": {"value": value}}  # fmt: skip
    return _stored("Observation", rid, body)


def _records() -> list[StoredResource]:
    hiv = [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}]
    return [
        _condition("a", "RNA", "44054006", "2020-01-01"),
        _condition("b", "RL4", "44054006", "2020-01-01T09:00:00Z"),  # same day: the same fact
        _condition("c", "RL4", "44054006", "2020-01-01"),  # the same trust again
        _condition("d", "RXK", "44054006", "2020-01-01", security=hiv),  # labelled: another fact
        _condition("e", None, "38341003", "2021-05-05"),  # untagged
        _condition("f", "RBK", "38341003", "2021-05-05"),
        _condition("g", "RBK", "73211009", "2019-02-02"),
        _condition("h", "RBK", "73211009", "2019-02-02"),  # one trust's repeat only: never collapsed
        _observation("o1", "RXK", 5),
        _observation("o2", "RNA", 5),
        _observation("o3", "RNA", 6),
        _stored("Encounter", "x", {"resourceType": "Encounter", "id": "x"}),
    ]


def _keyed(items: list[StoredResource]) -> list[tuple[StoredResource, str | None, str]]:
    out = []
    for item in items:
        assert item.body is not None
        key, ods = fact_key(item.resource_type, item.body)
        out.append((item, key, ods))
    return out


def test_kept_keys_collapse_exactly_as_the_json_does() -> None:
    """Every order of the records (the tie-break is position): the same resources, tags and extensions."""
    records = _records()
    for order in itertools.islice(itertools.permutations(range(len(records))), 0, 4000, 37):
        items = [records[i] for i in order]
        for priority in (PRIORITY, (), ("RXK", "RNA")):
            expected = collapse_same_facts(items, priority)
            assert collapse_keyed(_keyed(items), priority) == expected


def test_the_comparison_can_fail() -> None:
    """A key that ignores the security labels collapses a labelled fact into an unlabelled one: caught."""
    items = _records()
    keyed = _keyed(items)
    wrong = [(item, key, ods) if item.id != "d" else (item, keyed[0][1], ods) for item, key, ods in keyed]
    assert collapse_keyed(wrong, PRIORITY) != collapse_same_facts(items, PRIORITY)


def test_a_fact_from_two_trusts_is_kept_once_with_both_trusts() -> None:
    kept = collapse_keyed(_keyed(_records()), PRIORITY)
    ids = [r.id for r in kept]
    # RL4 ranks first; its own repeat of the fact goes with the other trust's
    assert [i for i in ids if i in "abcdgh"] == ["b", "d", "g", "h"]
    body = orjson.loads(next(r for r in kept if r.id == "b").body or b"{}")
    assert [t["code"] for t in body["meta"]["tag"]] == ["RL4", "RNA"]


def _index_rows(items: list[StoredResource], *, keyed: bool) -> list[RecordKey]:
    """Rows as the store's body-less read gives them: keys kept (no body), or not kept yet (the body, to key)."""
    rows = []
    for vid, item in enumerate(items, start=1):
        assert item.body is not None
        key, ods = fact_key(item.resource_type, item.body)
        body = None if keyed or item.resource_type not in FACT_TYPES else item.body
        rows.append((vid, item.resource_type, item.id, keyed, key if keyed else None, ods if keyed else "", body))
    return rows


def _paged(
    items: list[StoredResource], priority: tuple[str, ...], *, keyed: bool, reverse: bool = False
) -> list[StoredResource]:
    by_id = {(r.resource_type, r.id): r for r in items}
    unkeyed: list[int] = []
    rows = _index_rows(items, keyed=keyed)  # version keys in record order; the store's read returns any order
    entries = person_index("nobody", rows[::-1] if reverse else rows, priority, unkeyed)
    assert len(unkeyed) == (0 if keyed else sum(r.resource_type in FACT_TYPES for r in items))
    served = []
    for rtype, rid, _, ods, folds in entries:
        item = by_id[(rtype, rid)]
        served.append(fold_others(item, folds, ods, priority) if folds else item)
    return served


def test_the_bodyless_index_serves_exactly_what_the_json_collapse_gives() -> None:
    """$everything's record index (keys and trusts only, bodies read per page) against the JSON oracle, in every
    order of the records, with keys kept and with keys computed in the read."""
    records = _records()
    for order in itertools.islice(itertools.permutations(range(len(records))), 0, 4000, 97):
        items = [records[i] for i in order]
        for priority in (PRIORITY, (), ("RXK", "RNA")):
            expected = sorted(collapse_same_facts(items, priority), key=lambda r: (r.resource_type, r.id))
            assert _paged(items, priority, keyed=True) == expected
            assert _paged(items, priority, keyed=False) == expected
            assert _paged(items, priority, keyed=True, reverse=True) == expected


def test_the_index_comparison_can_fail() -> None:
    """An index built with another trust priority keeps another survivor: the comparison sees it."""
    items = _records()
    expected = sorted(collapse_same_facts(items, PRIORITY), key=lambda r: (r.resource_type, r.id))
    assert _paged(items, ("RNA", "RXK"), keyed=True) != expected
