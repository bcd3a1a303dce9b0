"""``bcconnect mappings test|explain|lint`` exit codes and output."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
from tests.unit.mapping._support import MAPPINGS_DIR

from bcconnect.cli import mappings_cmd
from bcconnect.errors import UsageError


def run(*argv: str) -> int:
    """Parse ``argv`` with only the mappings command group registered, and run its handler."""
    parser = argparse.ArgumentParser()
    mappings_cmd.register(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    code: int = args.handler(args)
    return code


def test_test_passes_on_a_set(capsys: pytest.CaptureFixture[str]) -> None:
    """All golden cases of rna-json pass: exit 0 and a summary line."""
    assert run("mappings", "test", str(MAPPINGS_DIR / "rna-json")) == 0
    assert "0 failed" in capsys.readouterr().out


def test_test_fails_when_an_expectation_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A changed expected file makes the case fail with the first differing path: exit 1."""
    shutil.copytree(MAPPINGS_DIR / "rna-json", tmp_path / "rna-json")
    shutil.copytree(MAPPINGS_DIR / "_common", tmp_path / "_common")
    expected = tmp_path / "rna-json" / "golden" / "allergy.expected.json"
    expected.write_text(expected.read_text(encoding="utf-8").replace("Allergy to", "Allergy 2"), encoding="utf-8")
    assert run("mappings", "test", str(tmp_path / "rna-json")) == 1
    assert "FAIL allergy: $[0].code" in capsys.readouterr().out


def test_explain_names_rule_and_source_per_field(capsys: pytest.CaptureFixture[str]) -> None:
    """explain on a golden input lists each written field with its rule and source value."""
    assert run("mappings", "explain", str(MAPPINGS_DIR / "rna-json" / "golden" / "patient-verified.json")) == 0
    out = capsys.readouterr().out
    assert "birthDate" in out
    assert "by birth-date (patient.yaml:" in out
    assert "← dob = " in out


def test_lint_reports_and_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    """The repository's sets lint without errors (warnings allowed)."""
    assert run("mappings", "lint", str(MAPPINGS_DIR / "rbk-hl7v2")) == 0
    assert "0 error(s)" in capsys.readouterr().out


def test_lint_flags_nondeterminism_and_missing_golden(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A key from $received_at, a uuid4 mention and a file without golden case are errors."""
    shutil.copytree(MAPPINGS_DIR / "rna-json", tmp_path / "rna-json")
    shutil.copytree(MAPPINGS_DIR / "_common", tmp_path / "_common")
    (tmp_path / "rna-json" / "extra.yaml").write_text(
        "id: extra\nversion: 1.0.0\nsource: {type: extra, profile: x}\nresources:\n"
        '  - type: Basic\n    profile: "http://hl7.org/fhir/StructureDefinition/Basic"\n'
        '    key: "{$received_at}"\n    rules:\n      - {target: id, const: uuid4}\n',
        encoding="utf-8",
    )
    assert run("mappings", "lint", str(tmp_path / "rna-json")) == 1
    out = capsys.readouterr().out
    assert "[determinism]" in out
    assert "reads $received_at" in out
    assert "extra has no golden case" in out


def test_unknown_path_is_a_usage_error(tmp_path: Path) -> None:
    """A path that is no mapping set is a usage error (exit 2 in the CLI)."""
    with pytest.raises(UsageError):
        run("mappings", "test", str(tmp_path / "nothing"))
