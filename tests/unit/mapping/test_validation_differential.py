"""The shape-cached validator accepts and rejects exactly what fhir.resources accepts and rejects.

Valid resources come from every golden case; hypothesis breaks them — primitive values replaced by awkward
ones (same shape: the fast path decides), and elements removed, added or retyped (new shape: the full path
decides) — and both validators must agree on every variant.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.mapping._support import MAPPINGS_DIR, existing_sets

from bcconnect.mapping.golden import load_cases
from bcconnect.mapping.validation import Validator, full_model_problems, shape_of

Path_ = tuple[str | int, ...]


def _golden_resources() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in existing_sets():
        for case in load_cases(MAPPINGS_DIR / name):
            if case.expected is not None and case.expected.is_file():
                out.extend(orjson.loads(case.expected.read_bytes()))
    return out


RESOURCES = _golden_resources()
WARM = Validator(fast=True)
for _resource in RESOURCES:
    assert WARM.model_problems(_resource) == [], _resource["resourceType"]


def _leaf_paths(value: Any, path: Path_ = ()) -> list[Path_]:
    if isinstance(value, dict):
        return [p for k, v in value.items() if k != "resourceType" for p in _leaf_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaf_paths(v, (*path, i))]
    return [path]


def _container_paths(value: Any, path: Path_ = ()) -> list[Path_]:
    if isinstance(value, dict):
        return [path] + [p for k, v in value.items() for p in _container_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _container_paths(v, (*path, i))]
    return []


def _set(resource: dict[str, Any], path: Path_, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    cur: Any = out
    for step in path[:-1]:
        cur = cur[step]
    cur[path[-1]] = value
    return out


AWKWARD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "  leading",
        "trailing ",
        "two  spaces",
        "tab\there",
        "line\nbreak",
        "ünïcödé",
        "a" * 65,
        "2020-13-01",
        "2020-02-30",
        "2020-1-1",
        "20200101",
        "2026-11-22T25:00:00Z",
        "2026-11-22T10:00:00",
        "2026-11-22T10:00:00+01:00",
        "2026-11",
        "2026",
        "1961-03-07",
        "http://x y",
        "urn:uuid:1",
        "-1",
        "0",
        "1e3",
        "true",
        "Patient/abc",
        "abc_def",
        "ABC.def-1",
        "x" * 70,
        "a\u0000b",
    ]
) | st.text(max_size=12)
AWKWARD_NUMBER = (
    st.sampled_from([0, -1, 1, 2**31, -(2**31) - 1, 3.5, -0.0, 10**20])
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
)


def _same_type_value(draw: st.DrawFn, original: Any) -> Any:
    if isinstance(original, bool):
        return draw(st.booleans())
    if isinstance(original, int | float):
        value = draw(AWKWARD_NUMBER)
        return value if type(value) is type(original) else original
    return draw(AWKWARD_TEXT)


@st.composite
def same_shape_breakage(draw: st.DrawFn) -> dict[str, Any]:
    """A golden resource with one primitive replaced by a value of the same JSON type (shape unchanged)."""
    resource = draw(st.sampled_from(RESOURCES))
    path = draw(st.sampled_from(_leaf_paths(resource)))
    cur: Any = resource
    for step in path:
        cur = cur[step]
    return _set(resource, path, _same_type_value(draw, cur))


@st.composite
def structural_breakage(draw: st.DrawFn) -> dict[str, Any]:
    """A golden resource with an element removed, added, emptied or retyped (a new shape)."""
    resource = draw(st.sampled_from(RESOURCES))
    path = draw(st.sampled_from([p for p in _container_paths(resource) if p]))
    cur: Any = resource
    for step in path:
        cur = cur[step]
    kind = draw(st.sampled_from(["drop", "add", "retype", "empty", "null"]))
    out: dict[str, Any] = copy.deepcopy(resource)
    target: Any = out
    for step in path:
        target = target[step]
    keys = [k for k in target if k != "resourceType"]
    if kind == "drop" and keys:
        del target[draw(st.sampled_from(keys))]
    elif kind == "add":
        target[draw(st.sampled_from(["unknownElement", "value", "id", "extension", "text", "code"]))] = draw(
            st.sampled_from(["x", 1, True, [], {}, [{"url": "http://x"}], None])
        )
    elif kind == "retype" and keys:
        key = draw(st.sampled_from(keys))
        target[key] = draw(st.sampled_from([1, "x", True, [target[key]], {"a": 1}]))
    elif kind == "empty" and keys:
        key = draw(st.sampled_from(keys))
        target[key] = [] if isinstance(target[key], list) else {}
    elif keys:
        target[draw(st.sampled_from(keys))] = None
    return out


def _agree(resource: dict[str, Any]) -> None:
    fast = WARM.model_problems(resource)
    full = full_model_problems(resource)
    assert bool(fast) == bool(full), (fast, full)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(same_shape_breakage())
def test_fast_path_agrees_on_broken_primitive_values(resource: dict[str, Any]) -> None:
    """Same shape as a validated resource, so only the per-value checks decide — and they decide as the model."""
    before = WARM.full_validations
    _agree(resource)
    assert WARM.full_validations == before or shape_of(resource)[0] not in WARM._shapes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structural_breakage())
def test_validators_agree_on_structural_breakage(resource: dict[str, Any]) -> None:
    """Removed, added, emptied, nulled or retyped elements: both validators reject (or accept) alike."""
    _agree(resource)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("birthDate",), "1961-02-30"),
        (("birthDate",), "07/03/1961"),
        (("gender",), ""),
        (("name", 0, "given", 0), ""),
        (("name", 0, "family"), ""),
        (("id",), "not_a valid id"),
    ],
)
def test_known_breakages_are_rejected_by_both(path: Path_, value: Any) -> None:
    """Hand-picked breakages of a golden Patient are caught on the fast path, as the model catches them.

    (fhir.resources accepts a uri with spaces, a code with one inner space and a 65-character id; so does
    the fast path.)
    """
    patient = next(r for r in RESOURCES if r["resourceType"] == "Patient" and "birthDate" in r and "name" in r)
    broken = _set(patient, path, value)
    assert shape_of(broken)[0] == shape_of(patient)[0]
    assert WARM.model_problems(broken)
    assert full_model_problems(broken)
