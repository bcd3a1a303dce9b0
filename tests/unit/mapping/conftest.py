"""Fixtures for the mapping tests: the repository's mapping sets, loaded once per session."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.unit.mapping._support import MAPPINGS_DIR

from bcconnect.mapping import MappingSet, load_mapping_set

_CACHE: dict[str, MappingSet] = {}


@pytest.fixture(scope="session")
def mapping_set_of() -> Callable[[str], MappingSet]:
    """A function returning the loaded mapping set of a name (each loaded once)."""

    def get(name: str) -> MappingSet:
        if name not in _CACHE:
            _CACHE[name] = load_mapping_set(MAPPINGS_DIR / name)
        return _CACHE[name]

    return get
