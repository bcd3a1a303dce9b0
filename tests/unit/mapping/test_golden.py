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
MAPPED_CASES = [
    pytest.param(name, case, id=f"{name}:{case.name}")
    for name in existing_sets()
    for case in load_cases(MAPPINGS_DIR / name)
    if case.expected is not None
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


@pytest.mark.parametrize(("set_name", "case"), MAPPED_CASES)
def test_traced_and_fast_runs_agree(set_name: str, case: object, mapping_set_of: Callable[[str], MappingSet]) -> None:
    """``explain`` runs every rule through the general path; the specialised fast runners must match it."""
    ms = mapping_set_of(set_name)
    fast = run_case(ms, case)  # type: ignore[arg-type]
    traced = run_case(ms, case, explain=True)  # type: ignore[arg-type]
    assert fast.result is not None
    assert traced.result is not None
    assert traced.result.resources == fast.result.resources
    assert all(trace for trace in traced.result.trace)
