"""Loading a broken mapping set reports every problem in every file, each with file, line, field, expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcconnect.errors import DefinitionProblem, MappingDefinitionError
from bcconnect.mapping import load_mapping_set

SET = """\
id: broken
version: 1.0.0
format: json
templates: [templates.yaml]
"""
TEMPLATES = """\
templates:
  name:
    params: [family]
    rules:
      - {target: family, from: family}
"""
PATIENT = """\
id: broken-patient
version: 1.0.0
source: {type: patient, profile: vendor}
resources:
  - type: Patient
    profile: "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
    rules:
      - {target: gender, from: sex, lookup: {M: male}}
      - {target: "name[+]", template: nmae, with: {family: surname}}
      - {target: birthDate, from: dob, fn: uk_dat}
      - {target: "bad target!", from: x}
      - {target: active, from: "a[=]"}
      - {target: active, from: a, bogus: 1}
"""
ENCOUNTER = """\
id: broken-encounter
version: one
source: {type: encounter}
resources:
  - type: Encountre
    profile: "https://example.org/not-uk-core"
    rules:
      - {target: status, from: status, translate: no-such-map}
      - {target: class.code}
"""
SYNTAX = """\
id: syntax
resources:
  - {target: "name[*]", from: [unclosed
"""


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def _problems(root: Path) -> list[DefinitionProblem]:
    with pytest.raises(MappingDefinitionError) as info:
        load_mapping_set(root)
    return list(info.value.problems)


def test_every_problem_in_every_file_is_reported(tmp_path: Path) -> None:
    """Three broken files → problems from all three, not just the first one found."""
    root = _write(tmp_path, {"mapping-set.yaml": SET, "templates.yaml": TEMPLATES, "patient.yaml": PATIENT,
                             "encounter.yaml": ENCOUNTER, "syntax.yaml": SYNTAX})  # fmt: skip
    problems = _problems(root)
    files = {Path(p.file).name for p in problems}
    assert files == {"patient.yaml", "encounter.yaml", "syntax.yaml"}
    by_line = {(Path(p.file).name, p.line): p for p in problems}
    assert "unknown template 'nmae'" in by_line[("patient.yaml", 9)].message
    assert "unknown function 'uk_dat'" in by_line[("patient.yaml", 10)].message
    assert "element name" in by_line[("patient.yaml", 11)].message
    assert "[key=value]" in by_line[("patient.yaml", 12)].message or "[n]" in by_line[("patient.yaml", 12)].message
    assert "unknown rule key" in by_line[("patient.yaml", 13)].message
    assert "semantic version" in by_line[("encounter.yaml", 2)].message
    assert any(p.field.endswith("type") and "Encountre" in p.message for p in problems)
    assert any("UK Core profile" in p.message for p in problems)
    assert any("no ConceptMap" in p.message and p.line == 8 for p in problems)
    assert any("expected one of from, const, format" in p.message and p.line == 9 for p in problems)
    assert any(p.field == "(syntax)" and Path(p.file).name == "syntax.yaml" for p in problems)


def test_problem_names_file_line_and_field(tmp_path: Path) -> None:
    """The message of the error lists each problem as file:line: field: expectation."""
    root = _write(tmp_path, {"mapping-set.yaml": SET, "templates.yaml": TEMPLATES, "patient.yaml": PATIENT})
    with pytest.raises(MappingDefinitionError) as info:
        load_mapping_set(root)
    text = str(info.value)
    assert f"{root / 'patient.yaml'}:10: resources[0].rules[2].fn: unknown function 'uk_dat'" in text


def test_missing_set_file_is_a_problem(tmp_path: Path) -> None:
    """A directory without mapping-set.yaml is named as such."""
    problems = _problems(tmp_path)
    assert problems[0].file.endswith("mapping-set.yaml")


def test_bad_concept_map_is_reported_with_its_line(tmp_path: Path) -> None:
    """A ConceptMap element without a target is reported at the element's line."""
    (tmp_path / "conceptmaps").mkdir()
    (tmp_path / "conceptmaps" / "m.json").write_text(
        '{"resourceType": "ConceptMap", "id": "m", "url": "https://x/m", "status": "active",\n'
        ' "group": [{"source": "https://a", "target": "https://b",\n'
        '   "element": [\n'
        '     {"code": "A"}]}]}\n',
        encoding="utf-8",
    )
    root = _write(tmp_path, {"mapping-set.yaml": SET, "templates.yaml": TEMPLATES})
    problems = _problems(root)
    assert [(Path(p.file).name, p.line) for p in problems] == [("m.json", 4)]
    assert "exactly one target" in problems[0].message


def test_template_rules_may_read_only_their_parameters(tmp_path: Path) -> None:
    """A template rule reading a record path (not a parameter or $variable) is reported in the template file."""
    templates = TEMPLATES + "      - {target: given, from: forenames}\n"
    root = _write(tmp_path, {"mapping-set.yaml": SET, "templates.yaml": templates})
    problems = _problems(root)
    assert [(Path(p.file).name, p.line) for p in problems] == [("templates.yaml", 6)]
    assert "reads its parameters (family) or $variables" in problems[0].message
