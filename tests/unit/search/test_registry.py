"""The packaged search-parameter registry agrees with itself and with the official definitions it came from."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from bcconnect.search import ParamType, registry

_WHERE_PATIENT = re.compile(r"^(\w+\.\w+)\.where\(resolve\(\) is Patient\)$")


def _packaged() -> dict[str, dict[str, dict[str, Any]]]:
    text = resources.files("bcconnect.fhir").joinpath("search_parameters.json").read_text(encoding="utf-8")
    params: dict[str, dict[str, dict[str, Any]]] = json.loads(text)["parameters"]
    return params


def _mismatches(spec: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """General reference parameters on an element whose ``.where(resolve() is Patient)`` narrowing exists but
    which do not themselves target Patient (the element plainly can point at a Patient)."""
    problems = []
    for rtype, params in spec.items():
        narrowed = {m.group(1) for p in params.values() if (m := _WHERE_PATIENT.match(str(p["expression"])))}
        for code, p in params.items():
            if p["type"] == "reference" and p["expression"] in narrowed and "Patient" not in p["target"]:
                problems.append(f"{rtype}.{code} ({p['expression']}) targets {p['target']}")
    return problems


def test_a_general_reference_parameter_targets_what_its_patient_narrowing_targets() -> None:
    # ``Condition.subject`` once came from the bundle's example SearchParameter (target Organization), so
    # ``Condition?subject.identifier=…`` chained into Organizations and silently found nothing
    assert _mismatches(_packaged()) == []


def test_the_guard_catches_the_example_definition() -> None:
    broken = _packaged()
    broken["Condition"]["subject"] = {
        "type": "reference", "expression": "Condition.subject", "target": ["Organization"],
        "url": "http://hl7.org/fhir/SearchParameter/example-reference",
    }  # fmt: skip
    assert _mismatches(broken) == ["Condition.subject (Condition.subject) targets ['Organization']"]


def test_no_parameter_comes_from_an_example_definition() -> None:
    reg = registry()
    examples = [
        f"{t}.{code}: {p.url}"
        for t in reg.resource_types
        for code, p in reg.params(t).items()
        if re.search(r"/SearchParameter/example", p.url)
    ]
    assert examples == []


def test_condition_subject_targets_patient_and_group() -> None:
    subject = registry().param("Condition", "subject")
    assert subject is not None
    assert subject.type is ParamType.REFERENCE
    assert set(subject.targets) == {"Group", "Patient"}
