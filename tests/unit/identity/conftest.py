"""Fixtures for the identity unit tests: the packaged rules (patients come from ``support.identity_patients``,
populations from ``support.identity_population``)."""

from __future__ import annotations

import pytest

from bcconnect.identity import Rules, load_rules


@pytest.fixture(scope="session")
def rules() -> Rules:
    """The packaged rules and EM-estimated weights."""
    return load_rules()
