"""The national data opt-out: applied to population-level outputs (cohorts), never to direct care.

A person with a national data opt-out is still seen by the clinicians treating them (the shared care record is
direct care, to which the opt-out does not apply), but must be left out of any population-health use: cohort
lists, counts for planning, exports. The list is a file of NHS numbers, one a line (``#`` comments allowed),
named by ``[security] national_opt_out_file``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bcconnect.errors import ConfigError
from bcconnect.fhir.nhs_number import is_valid, normalise

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class NationalOptOut:
    """The NHS numbers under the national data opt-out."""

    nhs_numbers: frozenset[str] = frozenset()

    @classmethod
    def load(cls, path: Path | None) -> NationalOptOut:
        """Read the opt-out file (no file configured: nobody has opted out); bad lines name their number."""
        if path is None:
            return cls()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError("cannot read the national data opt-out file", file=str(path)) from exc
        numbers: set[str] = set()
        for number, line in enumerate(lines, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            if not is_valid(text):
                raise ConfigError(f"line {number} is not a valid NHS number", file=str(path))
            numbers.add(normalise(text))
        return cls(frozenset(numbers))

    def __contains__(self, nhs_number: object) -> bool:
        return isinstance(nhs_number, str) and normalise(nhs_number) in self.nhs_numbers


def apply_national_opt_out(
    people: Iterable[T], opt_out: NationalOptOut, *, nhs_number: Callable[[T], str | None]
) -> list[T]:
    """The members of a population-level output that may be used: everyone not opted out.

    Use it on cohorts and other secondary uses only; direct care views must not call it. A member without an
    NHS number cannot be matched to the list and is kept (the opt-out is keyed on the NHS number).

    >>> out = NationalOptOut(frozenset({"9990000018"}))
    >>> apply_national_opt_out(["9990000018", "9990000026"], out, nhs_number=lambda n: n)
    ['9990000026']
    """
    return [p for p in people if (n := nhs_number(p)) is None or n not in opt_out]
