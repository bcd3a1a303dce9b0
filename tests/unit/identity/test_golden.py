"""The golden Patient: survivorship order, every identifier kept, conflicts flagged not hidden."""

from __future__ import annotations

from bcconnect.fhir.constants import PERSON_ID_SYSTEM
from bcconnect.identity import Rules, compose_golden, conflicts_of
from support.identity_patients import patient


def test_verified_sources_win_then_trust_priority(rules: Rules) -> None:
    unverified = patient("a", ods="RL4", status="02", given="Maggie")
    verified = patient("b", ods="RBK", given="Margaret", postcode="WS1 1AA")
    verified["meta"]["lastUpdated"] = "2026-01-01T00:00:00Z"
    golden = compose_golden("person-1", [unverified, verified], rules)
    assert golden["id"] == "person-1"
    assert golden["name"][0]["given"] == ["Margaret"]
    assert golden["address"][0]["postalCode"] == "WS1 1AA"
    assert [link["other"]["reference"] for link in golden["link"]] == ["Patient/b", "Patient/a"]
    systems = [(i["system"], i["value"]) for i in golden["identifier"]]
    assert systems[0] == (PERSON_ID_SYSTEM, "person-1")
    assert len([s for s in systems if s[1] in ("Ma", "Mb")]) == 2  # both trusts' MRNs kept
    assert conflicts_of(golden) == []


def test_trust_priority_decides_between_equally_verified_sources(rules: Rules) -> None:
    first, second = rules.source_priority[0], rules.source_priority[1]
    a = patient("a", ods=second, given="Maggie")
    b = patient("b", ods=first, given="Margaret")
    assert compose_golden("p", [a, b], rules)["name"][0]["given"] == ["Margaret"]


def test_conflicting_birth_date_sex_and_death_are_flagged(rules: Rules) -> None:
    a = patient("a", birth="1950-03-14", gender="female")
    b = patient("b", ods="RNA", birth="1951-03-14", gender="male")
    b["deceasedDateTime"] = "2026-10-01T10:00:00Z"
    golden = compose_golden("p", [a, b], rules)
    assert sorted(conflicts_of(golden)) == ["birthDate", "deceased", "gender"]
    assert golden["deceasedDateTime"] == "2026-10-01T10:00:00Z"
