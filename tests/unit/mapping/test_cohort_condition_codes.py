"""Every long-term condition the sandbox sends has a translation in the local-code ConceptMaps (RNA, RXK),
so no diagnosis a cohort counts is quarantined on the way in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bcconnect_sandbox import reference as ref
from bcconnect_sandbox.cohort_facts import BIPOLAR, SCHIZOPHRENIA, STROKE, TIA

MAPPINGS = Path(__file__).resolve().parents[3] / "mappings"
CONCEPT_MAPS = {
    "rna-json/conceptmaps/rna-diagnosis-to-snomed.json": "DX",
    "rxk-fhir/conceptmaps/rxk-clinical-to-snomed.json": "CL-",
}
SENT = sorted(
    {c.concept.code for c in ref.LONG_TERM_CONDITIONS} | {c.code for c in (STROKE, TIA, SCHIZOPHRENIA, BIPOLAR)}
)


@pytest.mark.parametrize(("path", "prefix"), sorted(CONCEPT_MAPS.items()))
def test_each_condition_the_sandbox_sends_translates_to_its_snomed_code(path: str, prefix: str) -> None:
    """The local code ``<prefix><snomed>`` maps to exactly that SNOMED CT concept."""
    concept_map = json.loads((MAPPINGS / path).read_text(encoding="utf-8"))
    targets = {
        element["code"]: [t["code"] for t in element.get("target", [])]
        for group in concept_map["group"]
        for element in group["element"]
    }
    missing = [code for code in SENT if targets.get(prefix + code) != [code]]
    assert not missing, f"{path} lacks {missing}"
