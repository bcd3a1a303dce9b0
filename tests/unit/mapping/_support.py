"""Where the mapping sets live, and which exist in this checkout."""

from __future__ import annotations

from pathlib import Path

MAPPINGS_DIR = Path(__file__).resolve().parents[3] / "mappings"
SET_NAMES = ("rl4-fhir", "rxk-fhir", "rna-json", "rbk-hl7v2", "uk-core-generic")


def existing_sets() -> list[str]:
    """The mapping sets present in this checkout."""
    return [name for name in SET_NAMES if (MAPPINGS_DIR / name / "mapping-set.yaml").is_file()]
