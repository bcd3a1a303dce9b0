"""Golden cases: an input record and the resources it must map to (or the error it must raise).

``mappings/<set>/golden/cases.yaml``::

    context: {ods_code: RL4, source_system: "https://fhir.rl4.nhs.uk", received_at: "2026-11-22T10:00:00Z"}
    cases:
      - name: patient-restricted
        record_type: Patient
        source_key: Patient/123
        input: patient-restricted.json            # the record as the trust sends it
        expected: patient-restricted.expected.json  # the resources, as a JSON list
      - name: bad-nhs-number
        record_type: Patient
        source_key: Patient/9
        input: patient-bad-nhs.json
        error: {type: ValidationError, contains: "Modulus 11"}

Run by pytest (``tests/unit/mapping/test_golden.py``) and by ``bcconnect mappings test [PATH]``;
``--update`` rewrites the expected files from the current output (review the diff before committing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bcconnect.errors import DefinitionProblem, MappingDefinitionError, RecordError
from bcconnect.mapping._yaml import load_yaml
from bcconnect.mapping.engine import MappingContext, MappingResult, MappingSet

GOLDEN_DIR = "golden"
CASES_FILE = "cases.yaml"


@dataclass(frozen=True, slots=True)
class GoldenCase:
    """One golden case as written in cases.yaml."""

    name: str
    record_type: str
    context: MappingContext
    input: Path
    expected: Path | None
    error_type: str | None
    error_contains: str | None


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """The outcome of running one golden case."""

    case: GoldenCase
    passed: bool
    message: str
    mapping_file: str | None = None
    result: MappingResult | None = None


def load_cases(set_dir: Path) -> list[GoldenCase]:
    """The golden cases of a mapping set (none when it has no golden/cases.yaml)."""
    path = set_dir / GOLDEN_DIR / CASES_FILE
    if not path.is_file():
        return []
    problems: list[DefinitionProblem] = []
    doc = load_yaml(path, problems)
    if problems:
        raise MappingDefinitionError(problems)
    base: dict[str, Any] = dict(doc.get("context") or {})
    out: list[GoldenCase] = []
    for i, node in enumerate(doc.get("cases") or ()):
        ctx = {**base, **(node.get("context") or {})}
        unknown = set(node) - {"name", "note", "record_type", "source_key", "input", "expected", "error", "context"}
        if unknown:
            problems.append(DefinitionProblem(str(path), getattr(node, "line", None), f"cases[{i}]",
                                              f"unknown keys {sorted(unknown)}"))  # fmt: skip
        missing = [k for k in ("name", "record_type", "source_key", "input") if k not in node]
        missing += [k for k in ("ods_code", "source_system", "received_at") if k not in ctx]
        if missing:
            problems.append(DefinitionProblem(str(path), getattr(node, "line", None), f"cases[{i}]",
                                              f"missing {', '.join(missing)}"))  # fmt: skip
            continue
        error = node.get("error") or {}
        out.append(
            GoldenCase(
                name=str(node["name"]),
                record_type=str(node["record_type"]),
                context=MappingContext(
                    str(ctx["ods_code"]),
                    str(ctx["source_system"]),
                    str(node["source_key"]),
                    str(ctx["received_at"]),
                    str(ctx["local_mrn_system"]) if ctx.get("local_mrn_system") else None,
                ),
                input=path.parent / str(node["input"]),
                expected=path.parent / str(node["expected"]) if node.get("expected") else None,
                error_type=error.get("type"),
                error_contains=error.get("contains"),
            )
        )
    if problems:
        raise MappingDefinitionError(problems)
    return out


def run_case(ms: MappingSet, case: GoldenCase, *, update: bool = False, explain: bool = False) -> CaseOutcome:
    """Map the case's input and compare with what it expects."""
    payload = case.input.read_bytes()
    try:
        result = ms.map(case.record_type, payload, context=case.context, explain=explain)
    except RecordError as exc:
        if case.error_type is None:
            return CaseOutcome(case, False, f"unexpected {type(exc).__name__}: {exc}; {'; '.join(exc.details)}")
        text = f"{exc} {' '.join(exc.details)}"
        if type(exc).__name__ != case.error_type and case.error_type not in {c.__name__ for c in type(exc).__mro__}:
            return CaseOutcome(case, False, f"expected {case.error_type}, got {type(exc).__name__}: {exc}")
        if case.error_contains and case.error_contains not in text:
            return CaseOutcome(case, False, f"error does not contain {case.error_contains!r}: {text}")
        return CaseOutcome(case, True, "raised as expected")
    if case.error_type is not None:
        return CaseOutcome(case, False, f"expected {case.error_type}, but it mapped", result.mapping_file, result)
    if case.expected is None:
        return CaseOutcome(case, False, "the case names neither 'expected' nor 'error'", result.mapping_file, result)
    if update:
        case.expected.write_bytes(orjson.dumps(result.resources, option=orjson.OPT_INDENT_2) + b"\n")
        return CaseOutcome(case, True, "expected file updated", result.mapping_file, result)
    if not case.expected.is_file():
        return CaseOutcome(case, False, f"missing {case.expected.name} (run with --update to create it)")
    expected = orjson.loads(case.expected.read_bytes())
    diff = first_difference(expected, result.resources)
    if diff is None:
        return CaseOutcome(case, True, "ok", result.mapping_file, result)
    return CaseOutcome(case, False, diff, result.mapping_file, result)


def run_golden(set_dir: Path, ms: MappingSet, *, update: bool = False) -> list[CaseOutcome]:
    """Run every golden case of the set in ``set_dir``."""
    return [run_case(ms, case, update=update) for case in load_cases(set_dir)]


def first_difference(expected: Any, actual: Any, path: str = "$") -> str | None:
    """A description of the first place two JSON values differ, or None when equal.

    >>> first_difference({"a": [1, 2]}, {"a": [1, 3]})
    '$.a[1]: expected 2, got 3'
    """
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in list(expected) + [k for k in actual if k not in expected]:
            if key not in actual:
                return f"{path}.{key}: missing (expected {_short(expected[key])})"
            if key not in expected:
                return f"{path}.{key}: unexpected {_short(actual[key])}"
            found = first_difference(expected[key], actual[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
            found = first_difference(e, a, f"{path}[{i}]")
            if found:
                return found
        if len(expected) != len(actual):
            return f"{path}: expected {len(expected)} items, got {len(actual)}"
        return None
    if expected != actual or type(expected) is not type(actual):
        return f"{path}: expected {_short(expected)}, got {_short(actual)}"
    return None


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 100 else text[:97] + "..."
