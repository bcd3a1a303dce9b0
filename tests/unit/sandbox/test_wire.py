"""The sandbox's own wire vocabulary says what the engine expects: same systems, URLs and check digit."""

from __future__ import annotations

import pytest

import bcconnect_sandbox.wire as wire
from bcconnect.fhir import constants, nhs_number

SHARED_NAMES = [name for name in vars(wire) if name.isupper() and not name.startswith("_")]


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_each_identifier_matches_the_engine(name: str) -> None:
    """A trust's system URL and the engine's constant of the same name are the same text."""
    assert getattr(wire, name) == getattr(constants, name)


def test_the_mrn_system_matches_the_engine() -> None:
    """Both sides scope an MRN to its trust the same way."""
    assert wire.mrn_system("RXK") == constants.mrn_system("RXK")


@pytest.mark.parametrize("prefix", ["999000001", "123456789", "943476591", "000000000", "401023213"])
def test_the_check_digit_matches_the_engine(prefix: str) -> None:
    """The sandbox issues only numbers the engine accepts as valid."""
    assert wire.check_digit(prefix) == nhs_number.check_digit(prefix)
