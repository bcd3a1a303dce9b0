"""Fixtures for the identity unit tests: the packaged rules and a synthetic population generator (patients
come from ``support.identity_patients``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bcconnect.identity import Rules, load_rules

BENCH = Path(__file__).resolve().parents[3] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


@pytest.fixture(scope="session")
def rules() -> Rules:
    """The packaged rules and EM-estimated weights."""
    return load_rules()
