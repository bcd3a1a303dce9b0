"""The national data opt-out applies to population outputs, keyed on NHS number."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcconnect.errors import ConfigError
from bcconnect.security import NationalOptOut, apply_national_opt_out


def test_the_opt_out_file_is_read_with_comments_and_spaces(tmp_path: Path) -> None:
    """Numbers may be written with spaces; comments and blank lines are skipped."""
    path = tmp_path / "opt-out.txt"
    path.write_text("# national data opt-out\n999 000 0018\n\n9990000026  # since 2024\n", encoding="utf-8")
    opt_out = NationalOptOut.load(path)
    assert opt_out.nhs_numbers == {"9990000018", "9990000026"}
    assert "999-000-0018" in opt_out


def test_a_bad_number_in_the_file_is_a_config_error(tmp_path: Path) -> None:
    """An invalid NHS number names its line."""
    path = tmp_path / "opt-out.txt"
    path.write_text("9990000018\n9876544321\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2"):
        NationalOptOut.load(path)


def test_a_cohort_leaves_out_opted_out_people_and_keeps_the_rest() -> None:
    """Members are filtered by NHS number; a member without one cannot be matched and stays."""
    cohort = [("a", "9990000018"), ("b", "9990000026"), ("c", None)]
    kept = apply_national_opt_out(cohort, NationalOptOut(frozenset({"9990000018"})), nhs_number=lambda m: m[1])
    assert [m[0] for m in kept] == ["b", "c"]


def test_no_file_means_nobody_has_opted_out() -> None:
    """Without configuration, the opt-out removes nobody."""
    assert apply_national_opt_out(["9990000018"], NationalOptOut.load(None), nhs_number=str) == ["9990000018"]


def test_a_line_may_name_type_1_or_type_2_and_anything_else_is_refused(tmp_path: Path) -> None:
    """``,1`` marks a type 1 (GP practice) opt-out; ``,2`` or nothing the national data opt-out."""
    path = tmp_path / "opt-out.txt"
    path.write_text("9990000018,1\n9990000026, 2\n9990000034\n", encoding="utf-8")
    opt_out = NationalOptOut.load(path)
    assert [opt_out.kind(n) for n in ("9990000018", "9990000026", "9990000034", "9990000042")] == ["1", "2", "2", None]
    path.write_text("9990000018\n9990000026,3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2"):
        NationalOptOut.load(path)
