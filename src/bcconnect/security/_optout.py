"""The national data opt-out: applied to population-level outputs (cohorts), never to direct care.

A person with a national data opt-out is still seen by the clinicians treating them (the shared care record is
direct care, to which the opt-out does not apply), but must be left out of any population-health use: cohort
lists, counts for planning, exports. The list is a file of NHS numbers, one a line (``#`` comments allowed),
named by ``[security] national_opt_out_file``. A line may name the kind of opt-out after a comma:

- ``9990000018`` or ``9990000018,2``: the national data opt-out (it replaced the type 2 opt-out in 2018, and
  type 2 objections were converted to it), as returned by the Check for National Data Opt-outs service;
- ``9990000018,1``: a type 1 opt-out recorded at the GP practice (no GP-identifiable data to leave the practice
  for purposes beyond direct care).

Both remove the person from every population-level output (see ``docs/cohorts.md``); the type is kept only so
the number removed can be reported per kind, never who.
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
    """The NHS numbers under the national data opt-out (``nhs_numbers``: either type; ``type1``: those of type 1)."""

    nhs_numbers: frozenset[str] = frozenset()
    type1: frozenset[str] = frozenset()

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
        type1: set[str] = set()
        for number, line in enumerate(lines, start=1):
            text, _, kind = line.split("#", 1)[0].partition(",")
            text, kind = text.strip(), kind.strip()
            if not text:
                continue
            if not is_valid(text):
                raise ConfigError(f"line {number} is not a valid NHS number", file=str(path))
            if kind not in ("", "1", "2"):
                raise ConfigError(f"line {number}: the opt-out type is 1 or 2, not {kind!r}", file=str(path))
            numbers.add(normalise(text))
            if kind == "1":
                type1.add(normalise(text))
        return cls(frozenset(numbers), frozenset(type1))

    def __contains__(self, nhs_number: object) -> bool:
        return isinstance(nhs_number, str) and normalise(nhs_number) in self.nhs_numbers

    def kind(self, nhs_number: str) -> str | None:
        """``"1"`` (type 1 only), ``"2"`` (the national data opt-out) or None (not opted out).

        >>> NationalOptOut(frozenset({"9990000018", "9990000026"}), frozenset({"9990000026"})).kind("9990000026")
        '1'
        """
        found = normalise(nhs_number)
        if found not in self.nhs_numbers:
            return None
        return "1" if found in self.type1 else "2"


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
