"""Addresses of values inside a message: ``PID-3[2].1.2`` (segment, field, repetition, component, sub)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATH = re.compile(
    r"""^(?:(?P<segment>[A-Z][A-Z0-9]{2})(?:\[(?P<segment_rep>[1-9]\d*)\])?-)?
        (?P<field>[1-9]\d*)(?:\[(?P<repetition>[1-9]\d*)\])?
        (?:\.(?P<component>[1-9]\d*)(?:\.(?P<subcomponent>[1-9]\d*))?)?$""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A parsed path; every position is 1-based, as in the HL7 v2 standard.

    ``repetition`` ``None`` means "the first" for :meth:`Message.get` and "every" for :meth:`Message.get_all`.
    """

    segment: str | None
    segment_repetition: int
    field: int
    repetition: int | None = None
    component: int | None = None
    subcomponent: int | None = None

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        """Parse ``SEG[n]-field[rep].component.subcomponent`` (everything after the field is optional).

        Raises ``ValueError`` naming the path, so a mapping file can be checked when it is loaded.

        >>> FieldPath.parse("PID-3[2].1")
        FieldPath(segment='PID', segment_repetition=1, field=3, repetition=2, component=1, subcomponent=None)
        >>> FieldPath.parse("OBX[2]-5").segment_repetition
        2
        """
        match = _PATH.match(text.strip())
        if match is None:
            raise ValueError(
                f"invalid HL7 v2 path {text!r}: expected SEG-field[rep].component.subcomponent, e.g. 'PID-3[2].1'"
            )
        groups = match.groupdict()

        def number(name: str) -> int | None:
            value = groups[name]
            return int(value) if value is not None else None

        field = number("field")
        assert field is not None  # the pattern requires it
        return cls(
            segment=groups["segment"],
            segment_repetition=number("segment_rep") or 1,
            field=field,
            repetition=number("repetition"),
            component=number("component"),
            subcomponent=number("subcomponent"),
        )

    def __str__(self) -> str:
        text = ""
        if self.segment:
            rep = f"[{self.segment_repetition}]" if self.segment_repetition != 1 else ""
            text = f"{self.segment}{rep}-"
        text += str(self.field)
        if self.repetition is not None:
            text += f"[{self.repetition}]"
        if self.component is not None:
            text += f".{self.component}"
            if self.subcomponent is not None:
                text += f".{self.subcomponent}"
        return text
