"""Derive ``src/bcconnect/fhir/elements.json``: each served type's root elements and its mandatory ones.

Usage: ``python scripts/derive_elements.py``. A Bulk Data export with ``_elements`` keeps the named root elements
plus the mandatory ones (min cardinality >= 1 in the base definition), so every line stays a valid resource; an
element name that is not a root element of any exported type is refused. Both lists come from the installed
``fhir.resources`` models (R4B, identical to R4 for these types, as the summary elements in
``search_parameters.json``). A choice element is listed by its stem (``value``, ``medication``), and it is
mandatory when one of its forms must be present. The output is deterministic.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from derive_search_parameters import TYPES

OUT = Path(__file__).resolve().parent.parent / "src" / "bcconnect" / "fhir" / "elements.json"


def _elements(resource_type: str) -> tuple[list[str], list[str], list[str]]:
    """(root elements, mandatory root elements, choice stems) of one type, choice elements by their stem."""
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    model: Any = getattr(module, resource_type)
    names: set[str] = set()
    required: set[str] = set()
    choices: set[str] = set()
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra or {}
        if not isinstance(extra, dict) or not extra.get("element_property"):
            continue  # fhir_comments and the ``_name`` primitive extensions
        stem = extra.get("one_of_many")
        element = stem if isinstance(stem, str) else (field.alias or name)
        if isinstance(stem, str):
            choices.add(stem)
        names.add(element)
        if field.is_required() or extra.get("element_required") or extra.get("one_of_many_required"):
            required.add(element)
    return sorted(names), sorted(required), sorted(choices)


def main() -> None:
    """Write the derived JSON."""
    elements: dict[str, list[str]] = {}
    mandatory: dict[str, list[str]] = {}
    choices: dict[str, list[str]] = {}
    for resource_type in sorted(TYPES):
        elements[resource_type], mandatory[resource_type], choices[resource_type] = _elements(resource_type)
    out = {
        "fhirVersion": "4.0.1",
        "source": "HL7 FHIR R4 resource definitions (CC0), as the fhir.resources models carry them",
        "rootElements": elements,
        "mandatoryElements": mandatory,
        "choiceElements": choices,
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
