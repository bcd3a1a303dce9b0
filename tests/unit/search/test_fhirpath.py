"""The FHIRPath subset used for index extraction."""

from __future__ import annotations

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
