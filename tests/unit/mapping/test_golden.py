"""Every golden case of every mapping set maps to exactly its expected resources (or raises its error)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.unit.mapping._support import MAPPINGS_DIR, existing_sets

from bcconnect.mapping import MappingSet
from bcconnect.mapping.golden import load_cases, run_case

CASES = [
    pytest.param(name, case, id=f"{name}:{case.name}")
    for name in existing_sets()
    for case in load_cases(MAPPINGS_DIR / name)
]


@pytest.mark.parametrize(("set_name", "case"), CASES)
def test_golden_case(set_name: str, case: object, mapping_set_of: Callable[[str], MappingSet]) -> None:
    """The case's input maps to the expected file byte-for-byte as JSON values (or fails as expected)."""
    outcome = run_case(mapping_set_of(set_name), case)  # type: ignore[arg-type]
    assert outcome.passed, outcome.message


@pytest.mark.parametrize("set_name", existing_sets())
def test_every_mapping_file_has_a_golden_case(set_name: str, mapping_set_of: Callable[[str], MappingSet]) -> None:
    """No mapping file is without a golden case (the lint rule, enforced in CI)."""
    ms = mapping_set_of(set_name)
    covered = {ms.file_for(case.record_type).id for case in load_cases(MAPPINGS_DIR / set_name)}
    assert {f.id for f in ms.files} - covered == set()
