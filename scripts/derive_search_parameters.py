"""Derive ``src/bcconnect/fhir/search_parameters.json`` from the official FHIR R4 definitions.

Usage: ``python scripts/derive_search_parameters.py DEFINITIONS_DIR`` where the folder holds the R4
``search-parameters.json`` (a Bundle of SearchParameter) and ``CompartmentDefinition-patient.json``.

Only the resource types the engine serves are kept; for a parameter shared by several types (``date``,
``patient``…) only the union members for the type are kept. Summary elements come from the installed
``fhir.resources`` models (R4B, identical to R4 for these types). The output is deterministic.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

TYPES = [
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Procedure",
    "DiagnosticReport",
    "ServiceRequest",
    "Appointment",
    "EpisodeOfCare",
    "Organization",
    "Location",
    "Practitioner",
    "Provenance",
    # the further types a shared care record shows (the generic mapping set maps them)
    "Immunization",
    "MedicationAdministration",
    "Medication",
    "DocumentReference",
    "CarePlan",
    "CareTeam",
    "Goal",
    "ImagingStudy",
    "Device",
    "Flag",
    "RelatedPerson",
    "PractitionerRole",
    "Composition",
]
COMMON = ("_id", "_lastUpdated", "_tag", "_security", "_source", "_profile")
SEARCHABLE = ("token", "string", "date", "reference", "quantity", "uri", "number")
OUT = Path(__file__).resolve().parent.parent / "src" / "bcconnect" / "fhir" / "search_parameters.json"


def _split_union(expression: str) -> list[str]:
    """Split a FHIRPath union at top-level ``|`` (outside parentheses)."""
    parts, depth, current = [], 0, ""
    for char in expression:
        depth += char == "("
        depth -= char == ")"
        if char == "|" and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def _for_type(expression: str, resource_type: str) -> str | None:
    kept = [p for p in _split_union(expression) if p.lstrip("(").startswith(f"{resource_type}.")]
    return " | ".join(kept) or None


def _summary(resource_type: str) -> list[str]:
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    model: Any = getattr(module, resource_type)
    names = []
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra or {}
        if extra.get("summary_element_property"):
            names.append(field.alias or name)
    return sorted({n for n in names if not n.endswith("__ext")})


def _choice_elements() -> list[str]:
    """Names of choice elements (``value`` of ``value[x]``) in our types, their parts and extensions."""
    names: set[str] = set()
    for module_name in [t.lower() for t in TYPES] + ["extension"]:
        module = importlib.import_module(f"fhir.resources.R4B.{module_name}")
        for item in vars(module).values():
            fields = getattr(item, "model_fields", None)
            if isinstance(fields, dict):
                for field in fields.values():
                    stem = (field.json_schema_extra or {}).get("one_of_many")
                    if isinstance(stem, str):
                        names.add(stem)
    return sorted(names)


def main(source: Path) -> None:
    """Write the derived JSON."""
    bundle = json.loads((source / "search-parameters.json").read_text(encoding="utf-8"))
    compartment = json.loads((source / "CompartmentDefinition-patient.json").read_text(encoding="utf-8"))
    params: dict[str, dict[str, Any]] = {t: {} for t in (*TYPES, "Resource")}
    # the bundle carries examples (``example-reference`` says Condition.subject targets Organization) that share
    # codes with the real definitions: real ones first, an experimental one only for a code nothing else defines
    entries = sorted(bundle["entry"], key=lambda e: bool(e["resource"].get("experimental")))
    for entry in entries:
        sp = entry["resource"]
        if sp["type"] not in SEARCHABLE or not sp.get("expression"):
            continue
        for base in sp["base"]:
            if base == "Resource" and sp["code"] in COMMON:
                expression: str | None = sp["expression"]
            elif base in TYPES:
                expression = _for_type(sp["expression"], base)
            else:
                continue
            if expression:
                if sp["code"] in params[base]:
                    if sp.get("experimental"):
                        continue
                    raise SystemExit(f"{base}.{sp['code']} is defined twice ({sp['url']}): refusing to guess")
                params[base][sp["code"]] = {
                    "type": sp["type"],
                    "expression": expression,
                    "target": sorted(sp.get("target", [])),
                    "url": sp["url"],
                }
    compartments = {r["code"]: r.get("param", []) for r in compartment["resource"] if r["code"] in TYPES}
    out = {
        "fhirVersion": "4.0.1",
        "source": "HL7 FHIR R4 SearchParameter and CompartmentDefinition resources (CC0)",
        "parameters": {t: dict(sorted(p.items())) for t, p in sorted(params.items())},
        "patientCompartment": dict(sorted(compartments.items())),
        "summaryElements": {t: _summary(t) for t in sorted(TYPES)},
        "choiceElements": _choice_elements(),
    }
    OUT.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
