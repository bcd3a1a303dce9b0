"""Value normalisation and query parsing."""

from __future__ import annotations

import pytest

from bcconnect.errors import InvalidRequest, Unsupported
from bcconnect.search import (
    DateValue,
    Prefix,
    QuantityValue,
    ReferenceValue,
    StringValue,
    Summary,
    TokenValue,
    Total,
    date_range,
    extract_index,
    parse_search,
)


@pytest.mark.parametrize(
    ("text", "width_ms"),
    [
        ("2024", 366 * 86_400_000),
        ("2023-02", 28 * 86_400_000),
        ("2024-01-01", 86_400_000),
        ("2024-01-01T10:00", 60_000),
        ("2024-01-01T10:00:00Z", 1000),
        ("2024-01-01T10:00:00.5Z", 100),
        ("2024-01-01T10:00:00.123+01:00", 1),
    ],
)
def test_partial_dates_cover_their_precision(text: str, width_ms: int) -> None:
    """A date's range is as wide as its precision."""
    found = date_range(text)
    assert found is not None
    assert found[1] - found[0] == width_ms


def test_zones_are_normalised_and_bad_dates_refused() -> None:
    """10:00+01:00 is 09:00Z; impossible dates are None."""
    assert date_range("2024-01-01T10:00:00+01:00") == date_range("2024-01-01T09:00:00Z")
    assert date_range("2023-02-30") is None
    assert date_range("tomorrow") is None


def test_token_forms() -> None:
    """code, |code, system|code, system|; escaped bars stay in the value."""
    query = parse_search("Patient", [("identifier", "a,|b,s|c,s|"), ("identifier", r"x\|y")])
    assert query.clauses[0].values == (
        TokenValue(None, "a"),
        TokenValue("", "b"),
        TokenValue("s", "c"),
        TokenValue("s", None),
    )
    assert query.clauses[1].values == (TokenValue(None, "x|y"),)


def test_string_reference_date_quantity_values() -> None:
    """Each type parses to its value class."""
    query = parse_search(
        "Observation",
        [("subject", "Patient/1"), ("date", "le2024-01"), ("value-quantity", "5.4||mg"), ("code:text", "Zoë")],
    )
    subject, date, quantity, text = query.clauses
    assert subject.values == (ReferenceValue("Patient", "1"),)
    assert isinstance(date.values[0], DateValue)
    assert date.values[0].prefix is Prefix.LE
    assert isinstance(quantity.values[0], QuantityValue)
    assert quantity.values[0].code == "mg"
    assert text.values == (StringValue("zoe", "Zoë"),)


def test_result_parameters() -> None:
    """_count is capped, _sort keys keep order and direction, _summary and _total are enums."""
    query = parse_search(
        "Patient",
        [("_count", "5000"), ("_sort", "-birthdate,family"), ("_summary", "count"), ("_total", "accurate")],
        max_count=100,
    )
    assert query.count == 100
    assert [(k.param.code, k.descending) for k in query.sort] == [("birthdate", True), ("family", False)]
    assert query.summary is Summary.COUNT
    assert query.total is Total.ACCURATE


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ([("nope", "1")], Unsupported),
        ([("name:below", "x")], Unsupported),
        ([("subject.nope", "x")], Unsupported),
        ([("subject:Patient.organization.name", "x")], Unsupported),
        ([("_summary", "maybe")], InvalidRequest),
        ([("_include", "Patient:subject")], InvalidRequest),
        ([("_include", "Observation:status")], Unsupported),
        ([("date", "2024-13")], InvalidRequest),
        ([("code", "a|b|c")], InvalidRequest),
        ([("code:missing", "perhaps")], InvalidRequest),
    ],
)
def test_bad_queries_are_refused(params: list[tuple[str, str]], error: type[Exception]) -> None:
    """Unknown parameters and modifiers are Unsupported; malformed values are InvalidRequest."""
    with pytest.raises(error):
        parse_search("Observation", params)


def test_extraction_of_names_addresses_and_periods() -> None:
    """Every part of a HumanName and Address is a string row; a Period is one open-ended range."""
    rows = extract_index(
        {
            "resourceType": "Patient",
            "id": "p",
            "name": [{"family": "Ng", "given": ["Zoë"]}],
            "address": [{"line": ["1 High St"], "postalCode": "WV1 1AA"}],
        }
    )
    names = {r[1] for r in rows.strings if r[0] == "name"}
    assert names == {"ng", "zoe"}
    assert ("address-postalcode", "wv1 1aa", "WV1 1AA") in rows.strings
    assert rows.compartment == {"p"}
    encounter = extract_index({"resourceType": "Encounter", "id": "e", "period": {"start": "2024-01-01"}})
    (date_row,) = [r for r in encounter.dates if r[0] == "date"]
    assert date_row[2] > 2**61  # open end
