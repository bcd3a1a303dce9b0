"""``_elements`` subsetting keeps every resource valid: the mandatory elements derived from the R4 definitions are
what makes it so (with them emptied, the same subset no longer parses as its type)."""

from __future__ import annotations

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from bcconnect.bulk import _elements
from bcconnect.bulk._elements import ElementDefinitions, element_definitions, kept_elements, subset_line

CONDITION = (
    b'{"resourceType":"Condition","id":"c1","code":{"text":"asthma"},"subject":{"reference":"Patient/p1"},'
    b'"recordedDate":"2024-03-01","meta":{"versionId":"2","tag":[{"system":"s","code":"t"}]}}\n'
)
OBSERVATION = (
    b'{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"HbA1c"},'
    b'"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":48},"_status":{"id":"st"}}\n'
)


def _validate(line: bytes) -> None:
    resource = orjson.loads(line)
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_a_subset_keeps_the_mandatory_elements_and_stays_valid() -> None:
    keep = kept_elements(("Condition.recordedDate",), "Condition")
    assert keep is not None
    line = subset_line(CONDITION, keep, "Condition")
    _validate(line)
    assert b'"subject"' in line
    assert b'"code":{' not in line
    assert b'{"system":"s","code":"t"},{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue"' in line
    keep = kept_elements(("Observation.value",), "Observation")
    assert keep is not None
    line = subset_line(OBSERVATION, keep, "Observation")
    _validate(line)
    # the choice stem keeps its form; a kept primitive keeps its extensions
    assert b'"valueQuantity"' in line
    assert b'"_status"' in line
    assert b'"subject"' not in line


def test_the_guard_fails_when_the_mandatory_elements_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    real = element_definitions()
    empty = ElementDefinitions(real.root, {t: frozenset() for t in real.mandatory}, real.choices)
    monkeypatch.setattr(_elements, "element_definitions", lambda: empty)
    keep = kept_elements(("Condition.recordedDate",), "Condition")
    assert keep is not None
    with pytest.raises(ValidationError):
        _validate(subset_line(CONDITION, keep, "Condition"))


def test_the_mandatory_lists_match_the_base_definitions() -> None:
    """A few cardinalities from the R4 resource pages, so a wrong derivation is caught."""
    mandatory = element_definitions().mandatory
    assert mandatory["Observation"] == {"status", "code"}
    assert mandatory["Condition"] == {"subject"}
    assert mandatory["Encounter"] == {"status", "class"}
    assert mandatory["MedicationRequest"] == {"status", "intent", "medication", "subject"}
    assert mandatory["Provenance"] == {"target", "recorded", "agent"}
    assert mandatory["Patient"] == frozenset()
