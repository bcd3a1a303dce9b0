"""The log redactor masks NHS-number-like tokens wherever they hide, and leaves correlation ids whole."""

from __future__ import annotations

import uuid

import pytest

from bcconnect.logging import REDACTED, redact_identifiers


@pytest.mark.parametrize(
    "text",
    [
        "9990000018",
        "for 999 000 0018 today",
        "nhs=999-000-0018",
        "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018",
        "(9990000018)",
    ],
)
def test_an_nhs_number_standing_as_its_own_token_is_masked(text: str) -> None:
    out = redact_identifiers(None, "info", {"note": text})["note"]
    assert "0018" not in out
    assert REDACTED in out


@pytest.mark.parametrize(
    "request_id",
    [
        "3b8437ab4a6e461098523e0740426615",  # the id a CI run once saw cut to "...523e[redacted]"
        "0740426615ab4a6e461098523e3b8437",
        "ab-0740426615c",
    ],
)
def test_digits_inside_a_longer_token_are_not_an_nhs_number(request_id: str) -> None:
    assert redact_identifiers(None, "info", {"request_id": request_id})["request_id"] == request_id


def test_no_generated_request_id_is_ever_altered() -> None:
    for _ in range(20_000):
        rid = uuid.uuid4().hex
        assert redact_identifiers(None, "info", {"request_id": rid})["request_id"] == rid


def test_sensitive_keys_are_dropped_whatever_their_value() -> None:
    out = redact_identifiers(None, "info", {"nhs_number": "x", "Postcode": "WV10 0QP", "source": "RL4"})
    assert out == {"nhs_number": REDACTED, "Postcode": REDACTED, "source": "RL4"}
