"""What a rule reads: the record parsed per dialect, and readers for JSON paths, HL7 paths and variables.

Three source formats: ``fhir`` and ``json`` (orjson-parsed objects, JSON source paths) and ``hl7v2`` (a
:class:`bcconnect.hl7v2.Message`, paths like ``PID-3[2].1``). HL7 paths may select a repetition by a
component value, ``PID-3[5=MR].1`` (the repetition whose component 5 is ``MR``), since repetition order is
not something senders agree on. Inside ``each: OBX`` a path on the same segment reads the current segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from bcconnect.errors import ParseError
from bcconnect.hl7v2 import FieldPath, Segment, parse_message
from bcconnect.mapping._paths import PathSyntaxError, SourcePath, compile_source

FORMATS: Final = ("fhir", "json", "hl7v2")

#: Context variables every rule may read as ``$name``.
VARIABLES: Final = frozenset(
    {"ods", "source_system", "source_key", "source_id", "received_at", "record_type", "local_mrn_system"}
)


class Env(Protocol):
    """The per-record state a reader needs: the parsed record and the context variables."""

    root: Any
    vars: dict[str, str]
    cache: dict[str, Any]


def _segments(env: Env, segment_id: str) -> list[Segment]:
    """The message's segments with this id, indexed once per record (rules read segments many times)."""
    index: dict[str, list[Segment]] | None = env.cache.get("segments")
    if index is None:
        index = {}
        for seg in env.root:
            index.setdefault(seg.id, []).append(seg)
        env.cache["segments"] = index
    return index.get(segment_id, [])


class Reader(Protocol):
    """Reads every value a path denotes in the current scope (a list, maybe empty)."""

    @property
    def text(self) -> str:
        """The path as written in the mapping file."""
        ...

    def read(self, env: Env, scope: Any) -> list[Any]:
        """The values at this path."""
        ...


@dataclass(frozen=True, slots=True)
class VariableReader:
    """``$name``: a context variable."""

    text: str
    name: str

    def read(self, env: Env, scope: Any) -> list[Any]:
        """The variable's value as a one-item list (empty when unset)."""
        value = env.vars.get(self.name)
        return [value] if value else []


@dataclass(frozen=True, slots=True)
class EmptyReader:
    """A template parameter the caller did not fill: never has a value."""

    text: str

    def read(self, env: Env, scope: Any) -> list[Any]:
        """Nothing."""
        return []


@dataclass(frozen=True, slots=True)
class JsonReader:
    """A JSON source path, relative to the scope (or the record root after ``^.``)."""

    text: str
    path: SourcePath

    def read(self, env: Env, scope: Any) -> list[Any]:
        """The values at the path."""
        return self.path.select(env.root if self.path.from_root else scope, env.vars)


_HL7_FILTER: Final = re.compile(
    r"^(?P<head>[A-Z][A-Z0-9]{2}(?:\[\d+\])?-\d+)\[(?P<comp>\d+)=(?P<value>[^\]]*)\](?P<tail>(?:\.\d+){0,2})$"
)
_HL7_SEGMENT: Final = re.compile(r"^[A-Z][A-Z0-9]{2}$")


@dataclass(frozen=True, slots=True)
class Hl7Reader:
    """An HL7 v2 path, optionally with a ``[component=value]`` repetition filter."""

    text: str
    path: FieldPath
    filter_component: int | None = None
    filter_value: str | None = None

    def read(self, env: Env, scope: Any) -> list[Any]:
        """Every non-empty value at the path (every repetition unless one is named or filtered)."""
        # The same path is read several times per message (keys, references, conditions): memoise per record.
        memo_key = (self.text, id(scope) if isinstance(scope, Segment) else 0)
        memo: dict[tuple[str, int], list[Any]] = env.cache.setdefault("hl7", {})
        found = memo.get(memo_key)
        if found is None:
            found = memo[memo_key] = self._read(env, scope)
        return found

    def _read(self, env: Env, scope: Any) -> list[Any]:
        seg: Segment | None
        if isinstance(scope, Segment) and self.path.segment in (None, scope.id):
            seg = scope
        else:
            found = _segments(env, self.path.segment or "")
            idx = self.path.segment_repetition - 1
            seg = found[idx] if idx < len(found) else None
        if seg is None:
            return []
        if self.filter_component is None:
            return [v for v in seg.get_all(self.path) if v]
        field = seg.field(self.path.field)
        out: list[Any] = []
        for number, rep in enumerate(field, start=1):
            comp = rep[self.filter_component - 1][0] if self.filter_component <= len(rep) else ""
            if comp == self.filter_value:
                value = seg.get(
                    FieldPath(
                        self.path.segment,
                        1,
                        self.path.field,
                        number,
                        self.path.component,
                        self.path.subcomponent,
                    )
                )
                if value:
                    out.append(value)
        return out


@dataclass(frozen=True, slots=True)
class SegmentReader:
    """A bare segment id (``OBX``) for ``each``: every such segment of the message."""

    text: str

    def read(self, env: Env, scope: Any) -> list[Any]:
        """The segments, in message order."""
        return list(_segments(env, self.text))


def compile_reader(text: Any, source_format: str) -> Reader:
    """A reader for ``text`` in this source format; raises PathSyntaxError saying what was expected."""
    if not isinstance(text, str) or not text.strip():
        raise PathSyntaxError("expected a source path (a non-empty string)")
    text = text.strip()
    if text.startswith("$"):
        name = text[1:]
        if name not in VARIABLES:
            raise PathSyntaxError(f"unknown variable ${name}; expected one of {', '.join(sorted(VARIABLES))}")
        return VariableReader(text, name)
    if source_format != "hl7v2":
        return JsonReader(text, compile_source(text))
    if _HL7_SEGMENT.match(text):
        return SegmentReader(text)
    match = _HL7_FILTER.match(text)
    try:
        if match is None:
            return Hl7Reader(text, FieldPath.parse(text))
        path = FieldPath.parse(match.group("head") + match.group("tail"))
        return Hl7Reader(text, path, int(match.group("comp")), match.group("value"))
    except ValueError as exc:
        raise PathSyntaxError(f"expected an HL7 v2 path such as 'PID-3[5=MR].1' or 'OBX-5', got {text!r}") from exc


def parse_record(source_format: str, record_type: str, payload: bytes) -> Any:
    """The payload parsed for this source format; raises ParseError when the bytes are not that format."""
    if source_format == "hl7v2":
        return parse_message(payload)
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"{record_type} payload is not JSON: {exc.msg} at position {exc.pos}") from exc
    if not isinstance(doc, dict):
        raise ParseError(f"{record_type} payload is a JSON {type(doc).__name__}, expected an object")
    if source_format == "fhir" and doc.get("resourceType") != record_type:
        raise ParseError(f"payload resourceType is {doc.get('resourceType')!r}, expected {record_type!r}")
    return doc
