"""The parsed message: segments of fields of repetitions of components of sub-components."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from bcconnect.hl7v2._encoding import EncodingCharacters, escape
from bcconnect.hl7v2._path import FieldPath

#: the sub-components of one component, decoded (escape sequences resolved)
Component = tuple[str, ...]
#: the components of one repetition of a field
Repetition = tuple[Component, ...]
#: every repetition of one field (an empty field has one empty repetition)
Field = tuple[Repetition, ...]

_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_EMPTY: Repetition = (("",),)


def _trim(parts: tuple[str, ...]) -> tuple[str, ...]:
    """Drop trailing empty parts (``A^B^^`` means ``A^B``) but keep at least one."""
    end = len(parts)
    while end > 1 and parts[end - 1] == "":
        end -= 1
    return parts[:end]


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment: its id and its fields; ``fields[0]`` is field 1 (for MSH: the field separator)."""

    id: str
    fields: tuple[Field, ...]
    encoding: EncodingCharacters

    def field(self, number: int) -> Field:
        """Field ``number`` (1-based); an absent field is one empty repetition."""
        if number < 1:
            raise ValueError(f"field numbers start at 1, got {number}")
        return self.fields[number - 1] if number <= len(self.fields) else (_EMPTY,)

    def _values(self, path: FieldPath) -> list[str]:
        field = self.field(path.field)
        if path.repetition is None:
            repetitions = list(field)
        elif path.repetition <= len(field):
            repetitions = [field[path.repetition - 1]]
        else:
            repetitions = []
        return [self._render(rep, path) for rep in repetitions]

    def _render(self, rep: Repetition, path: FieldPath) -> str:
        enc = self.encoding
        if self.id == "MSH" and path.field in (1, 2):
            return rep[0][0]  # the delimiters themselves: never split, never unescaped
        if path.component is None:
            if len(rep) == 1 and len(rep[0]) == 1:
                return rep[0][0]  # atomic: the decoded value
            return enc.component.join(enc.subcomponent.join(escape(s, enc) for s in _trim(c)) for c in rep)
        if path.component > len(rep):
            return ""
        comp = rep[path.component - 1]
        if path.subcomponent is None:
            return enc.subcomponent.join(escape(s, enc) for s in comp) if len(comp) > 1 else comp[0]
        return comp[path.subcomponent - 1] if path.subcomponent <= len(comp) else ""

    def get(self, path: str | FieldPath) -> str | None:
        """The value at ``path`` (``"3[2].1"`` or ``"PID-3[2].1"``), or ``None`` when absent or empty.

        A leaf comes back decoded; an element that still has parts (a whole field with components) comes back
        as ER7 text, delimiters and escapes intact, so no structure is silently lost. HL7's explicit null
        (``""``) is returned as the two characters ``""``: it means "delete this value", not "absent".
        """
        parsed = path if isinstance(path, FieldPath) else FieldPath.parse(path)
        values = self._values(parsed)
        return values[0] or None if values else None

    def get_all(self, path: str | FieldPath) -> list[str]:
        """Every repetition's value at ``path`` (an empty repetition gives ``""``, an absent field ``[]``)."""
        parsed = path if isinstance(path, FieldPath) else FieldPath.parse(path)
        if parsed.field > len(self.fields):
            return []
        return self._values(parsed)

    def to_er7(self) -> str:
        """The segment as ER7 text (re-escaped)."""
        enc = self.encoding
        start = 2 if self.id == "MSH" else 0
        texts = [
            enc.repetition.join(
                enc.component.join(enc.subcomponent.join(escape(s, enc) for s in comp) for comp in rep) for rep in field
            )
            for field in self.fields[start:]
        ]
        head = [self.id, enc.msh2] if self.id == "MSH" else [self.id]
        return enc.field.join(head + texts)


@dataclass(frozen=True, slots=True)
class Message:
    """A parsed ER7 message. Build one with :func:`parse_message`."""

    segment_list: tuple[Segment, ...]
    encoding: EncodingCharacters

    @property
    def msh(self) -> Segment:
        """The MSH header segment (always the first)."""
        return self.segment_list[0]

    def segments(self, segment_id: str) -> list[Segment]:
        """Every segment with this id, in message order (``OBX`` repeats)."""
        return [s for s in self.segment_list if s.id == segment_id]

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segment_list)

    def _segment(self, path: FieldPath) -> Segment | None:
        if path.segment is None:
            raise ValueError(f"path {str(path)!r} must name a segment, e.g. 'PID-{path}'")
        found = self.segments(path.segment)
        return found[path.segment_repetition - 1] if path.segment_repetition <= len(found) else None

    def get(self, path: str | FieldPath) -> str | None:
        """The value at ``path`` (e.g. ``"PID-3[2].1"``), or ``None`` when absent or empty.

        Without ``[rep]`` the first repetition is read; ``OBX[2]-5`` reads the second OBX segment.
        """
        parsed = path if isinstance(path, FieldPath) else FieldPath.parse(path)
        segment = self._segment(parsed)
        return segment.get(parsed) if segment is not None else None

    def get_all(self, path: str | FieldPath) -> list[str]:
        """Every repetition's value at ``path`` (``"PID-3.1"``: component 1 of each PID-3 repetition)."""
        parsed = path if isinstance(path, FieldPath) else FieldPath.parse(path)
        segment = self._segment(parsed)
        return segment.get_all(parsed) if segment is not None else []

    # --- MSH accessors -----------------------------------------------------------------------------------
    @property
    def sending_application(self) -> str | None:
        """MSH-3.1."""
        return self.msh.get("3.1")

    @property
    def sending_facility(self) -> str | None:
        """MSH-4.1, e.g. ``RBK``."""
        return self.msh.get("4.1")

    @property
    def receiving_application(self) -> str | None:
        """MSH-5.1."""
        return self.msh.get("5.1")

    @property
    def receiving_facility(self) -> str | None:
        """MSH-6.1."""
        return self.msh.get("6.1")

    @property
    def timestamp(self) -> str | None:
        """MSH-7.1, the sender's date/time of the message (HL7 ``YYYYMMDDHHMMSS[+ZZZZ]``)."""
        return self.msh.get("7.1")

    @property
    def message_type(self) -> str:
        """MSH-9.1 and MSH-9.2, e.g. ``ADT^A01`` (``ACK`` when there is no trigger event)."""
        code = self.msh.get("9.1") or ""
        event = self.msh.get("9.2")
        return f"{code}^{event}" if event else code

    @property
    def trigger_event(self) -> str | None:
        """MSH-9.2, e.g. ``A01``."""
        return self.msh.get("9.2")

    @property
    def control_id(self) -> str:
        """MSH-10, unique per message from one sender."""
        return self.msh.get("10") or ""

    @property
    def processing_id(self) -> str | None:
        """MSH-11.1 (``P`` production, ``T`` training, ``D`` debugging)."""
        return self.msh.get("11.1")

    @property
    def version(self) -> str | None:
        """MSH-12.1, e.g. ``2.4``."""
        return self.msh.get("12.1")

    def to_er7(self) -> str:
        """The message as ER7 text, segments ended by ``\\r``."""
        return "".join(f"{segment.to_er7()}\r" for segment in self.segment_list)
