"""Normalisation of identity fields: what counts as the same value, and what counts as absent."""

from __future__ import annotations

from datetime import date

import pytest

from bcconnect.identity import demographics, double_metaphone
from bcconnect.identity._normalise import (
    first_given,
    normalise_birth_date,
    normalise_name,
    normalise_nhs_number,
    normalise_phone,
    normalise_postcode,
    normalise_sex,
    normalise_verification,
)
from support.identity_patients import patient


def test_an_nhs_number_failing_modulus_11_is_absent() -> None:
    assert normalise_nhs_number("999-000-0018") == "9990000018"
    assert normalise_nhs_number("9990000019") is None
    assert normalise_nhs_number("99900000") is None


@pytest.mark.parametrize(
    ("code", "expected"),
    [("01", "01"), ("number-present-and-verified", "01"), ("trace-postponed", "08"), ("2", "02"), ("x", None)],
)
def test_verification_codes_are_normalised_to_01_08(code: str, expected: str | None) -> None:
    assert normalise_verification(code) == expected


def test_names_fold_case_accents_and_punctuation() -> None:
    assert normalise_name("Zieliński") == "zielinski"
    assert normalise_name("O'NEILL") == normalise_name("o neill") == "oneill"
    assert first_given(["Dr", "Mary-Jane Ann"]) == "maryjane"


def test_postcodes_phones_sex_and_dates() -> None:
    assert normalise_postcode("dy1 4ab") == "DY1 4AB"
    assert normalise_postcode("B6 61AB") == "B66 1AB"
    assert normalise_phone("+447700900123") == "07700900123"
    assert normalise_sex("unknown") is None
    assert normalise_birth_date("1950-03") is None
    assert normalise_birth_date("1950-03-14") == date(1950, 3, 14)


def test_spelling_variants_share_a_phonetic_key() -> None:
    for a, b in [("Catherine", "Kathryn"), ("Stephen", "Steven"), ("Choudhry", "Chowdhury"), ("Smith", "Smyth")]:
        assert double_metaphone(a)[0] == double_metaphone(b)[0], (a, b)
    assert double_metaphone("Smith")[0] != double_metaphone("Jones")[0]


def test_demographics_reads_the_mapped_patient() -> None:
    resource = patient("p1", ods="RXK", status="number-present-but-not-traced", mrn="rxk123")
    resource["link"] = [{"other": {"reference": "Patient/p0"}, "type": "replaced-by"}]
    d = demographics(resource)
    assert d.ods_code == "RXK"
    assert d.nhs_number == "9990000018"
    assert d.verification == "02"
    assert not d.nhs_verified
    assert d.mrn == "RXK123"
    assert (d.given, d.family, d.sex, d.postcode, d.phone) == ("margaret", "cartwright", "F", "WV10 1AB", "07700900123")
    assert d.replaced_by == "p0"


def test_an_invalid_nhs_number_leaves_no_verification() -> None:
    d = demographics(patient("p1", nhs="9990000019", status="01"))
    assert d.nhs_number is None
    assert not d.nhs_verified
