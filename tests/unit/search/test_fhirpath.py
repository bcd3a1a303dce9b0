"""The FHIRPath subset used for index extraction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bcconnect.search import UnsupportedExpression, compile_expression, registry


def values(expression: str, resource: dict[str, Any]) -> list[object]:
    return [n.value for n in compile_expression(expression).evaluate(resource)]


def test_paths_flatten_arrays() -> None:
    """Each step maps over arrays."""
    resource = {"name": [{"given": ["A", "B"]}, {"given": ["C"]}]}
    assert values("Patient.name.given", resource) == ["A", "B", "C"]


def test_choice_elements_and_as() -> None:
    """``onset`` reaches onsetDateTime/onsetPeriod; ``as`` keeps one type (both spellings)."""
    resource = {"onsetPeriod": {"start": "2020"}, "valueQuantity": {"value": 1}}
    assert values("Condition.onset", resource) == [{"start": "2020"}]
    assert values("Condition.onset.as(Period)", resource) == [{"start": "2020"}]
    assert values("Condition.onset.as(dateTime)", resource) == []
    assert values("(Observation.value as Quantity)", resource) == [{"value": 1}]


def test_where_resolve_is_type_and_field_equality() -> None:
    """where(resolve() is Patient) filters references by type; where(system='phone') by field."""
    resource = {
        "participant": [{"actor": {"reference": "Patient/1"}}, {"actor": {"reference": "Location/2"}}],
        "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}],
    }
    assert values("Appointment.participant.actor.where(resolve() is Patient)", resource) == [{"reference": "Patient/1"}]
    assert values("Patient.telecom.where(system='email')", resource) == [{"system": "email", "value": "a@b"}]


def test_unions_and_extensions() -> None:
    """Unions concatenate; extension('url') yields the extension's value."""
    resource = {"name": "N", "alias": ["A"], "extension": [{"url": "u", "valueString": "x"}]}
    assert values("Organization.name | Organization.alias", resource) == ["N", "A"]
    assert values("Patient.extension('u')", resource) == ["x"]


@pytest.mark.parametrize("expression", ["Patient.deceased.exists() and Patient.deceased != false", "Patient.name[0]"])
def test_outside_the_subset_is_refused(expression: str) -> None:
    """Anything else raises, so the parameter is not advertised."""
    with pytest.raises(UnsupportedExpression):
        compile_expression(expression)


def test_registry_covers_the_briefed_parameters() -> None:
    """The parameters clinicians' systems use are all supported."""
    reg = registry()
    for code in ("_id", "identifier", "name", "family", "given", "birthdate", "gender", "address-postalcode"):
        assert reg.param("Patient", code) is not None, code
    assert reg.param("Patient", "general-practitioner") is not None
    for code in ("_lastUpdated", "_tag", "_security", "_source", "_profile"):
        assert reg.param("Observation", code) is not None, code
    assert reg.param("Patient", "deceased") is None  # expression outside the subset
    assert reg.param("Patient", "phonetic") is None  # needs an algorithm we do not have


def _golden_resources() -> list[dict[str, Any]]:
    """Every resource the mapping sets' golden cases produce (real mapped shapes of every dialect)."""
    root = Path(__file__).resolve().parents[3] / "mappings"
    found: list[dict[str, Any]] = []
    for path in sorted(root.glob("*/golden/*.expected.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        found += data if isinstance(data, list) else [data]
    return found


#: shapes the golden cases may not carry: every choice spelling, extensions with typed values, plain keys
_EDGE_CASES: list[dict[str, Any]] = [
    {
        "resourceType": "Observation",
        "valueQuantity": {"value": 1.5, "unit": "mmol/L"},
        "effectivePeriod": {"start": "2020-01-01"},
        "component": [
            {"code": {"text": "a"}, "valueCodeableConcept": {"text": "high"}},
            {"code": {"text": "b"}, "valueQuantity": {"value": 2}},
            {"code": {"text": "c"}, "valueSampledData": {"data": "1 2"}},
        ],
        "extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/observation-geneticsGene", "valueCodeableConcept": {}},
            {"url": "http://hl7.org/fhir/StructureDefinition/observation-geneticsDnaVariant", "valueString": "x"},
        ],
        "subject": {"reference": "Group/1"},
    },
    {"resourceType": "Observation", "valueString": "text", "value": "plain", "effectiveDateTime": "2021"},
    {"resourceType": "Patient", "deceasedDateTime": "2020-02-02", "telecom": [{"system": "email", "value": "a"}]},
    {"resourceType": "Patient", "deceasedBoolean": True, "name": [{"given": ["A"], "family": "B"}]},
    {"resourceType": "MedicationRequest", "medicationReference": {"reference": "Medication/1"}},
    {"resourceType": "MedicationRequest", "medicationCodeableConcept": {"coding": [{"code": "1"}]}},
    {"resourceType": "Condition", "onsetAge": {"value": 4}, "abatementString": "long ago"},
]


def test_plain_values_match_the_typed_evaluation_on_every_parameter() -> None:
    """Index extraction reads :meth:`Expression.values` (plain values, a choice ``as`` as one key lookup); it
    must reach exactly what the typed :meth:`Expression.evaluate` reaches, for every parameter of every type."""
    reg = registry()
    compared = 0
    for resource in [*_golden_resources(), *_EDGE_CASES]:
        for param in reg.params(resource["resourceType"]).values():
            typed = [node.value for node in param.expression.evaluate(resource)]
            assert param.expression.values(resource) == typed, (resource["resourceType"], param.code)
            compared += bool(typed)
    assert compared > 500  # the corpus reaches values, so the comparison is not vacuous


def test_the_comparison_catches_a_wrong_typed_lookup() -> None:
    """The comparison above can fail: a lookup of the wrong typed key reaches other values than ``as`` does."""
    choice = frozenset({"value"})
    resource = {"resourceType": "Observation", "valueString": "text"}
    wanted = compile_expression("(Observation.value as string)", choice)
    wrong = compile_expression("(Observation.value as Quantity)", choice)
    assert wanted.values(resource) == ["text"] == [n.value for n in wanted.evaluate(resource)]
    assert wrong.values(resource) != [n.value for n in wanted.evaluate(resource)]
