"""Shared pytest configuration: anyio on asyncio, and where the read-only reference material lives."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = PROJECT_ROOT.parent / "shared"


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio, the backend the engine is deployed on."""
    return "asyncio"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only reference material (FHIR R4 definitions, UK Core) beside the project."""
    return SHARED_DIR
