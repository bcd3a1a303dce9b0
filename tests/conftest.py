"""Shared pytest configuration: anyio on asyncio, the reference data derived from the official definitions
(``tests/data``, inside the repository), and ``store_url`` — every store-backed test runs on SQLite and on
PostgreSQL (each test in its own fresh schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from support.postgres_schema import postgres_schema_url

# Property tests: no per-example deadline (wall-clock time on a shared CI machine says nothing about
# correctness) and derandomised, so every run tries the same examples and a failure reproduces.
settings.register_profile("bcconnect", deadline=None, derandomize=True)
settings.load_profile("bcconnect")

#: facts derived from the official FHIR R4 definitions (CC0) by scripts/derive_test_references.py; a fresh clone
#: has everything the tests read
REFERENCE_DIR = Path(__file__).resolve().parent / "data"


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio, the backend the engine is deployed on."""
    return "asyncio"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The official reference facts the tests compare against, derived into the repository."""
    return REFERENCE_DIR


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty store: a SQLite file in tmp_path, or a fresh PostgreSQL schema (its own search_path)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        yield from postgres_schema_url()
