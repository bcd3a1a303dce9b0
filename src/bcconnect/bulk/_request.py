"""The kick-off request of a Bulk Data export: its level and parameters, checked before any job exists.

Everything a client can get wrong is refused here with an :class:`~bcconnect.errors.InvalidRequest` (400 and an
OperationOutcome at the API), so a job that was accepted only fails for reasons on our side.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from bcconnect.bulk._elements import check_elements, kept_elements
from bcconnect.errors import InvalidRequest

#: ``_outputFormat`` values the IG requires a server to accept, all meaning NDJSON of FHIR JSON
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
#: the kick-off parameters this server implements (anything else is refused rather than silently ignored)
ACCEPTED_PARAMETERS = frozenset({"_outputFormat", "_type", "_since", "_typeFilter", "_elements"})
#: query parameters that shape a result page, never a selection: not allowed inside a ``_typeFilter``
_RESULT_PARAMETERS = frozenset(
    {"_count", "_sort", "_include", "_revinclude", "_elements", "_summary", "_total", "_contained", "_page_token",
     "_format", "_pretty", "_containedType"}
)  # fmt: skip
#: FHIR ``instant``: a time to the second with a zone
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class Level(enum.Enum):
    """What the export is of: every resource, every patient's compartment, or a Group's members'."""

    SYSTEM = "system"
    PATIENT = "patient"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """A checked kick-off: which resources, of which types, changed since when, filtered how."""

    level: Level
    #: the Group whose members are exported (``Group/{id}/$export`` only)
    group_id: str | None = None
    #: the requested types (``_type``), in the order asked; empty: every type the caller may read
    types: tuple[str, ...] = ()
    #: ``_since`` as sent (an instant): only resources whose ``meta.lastUpdated`` is after it
    since: str | None = None
    #: ``_typeFilter``: search queries (parameter pairs) with their resource type, run through the view's search;
    #: several of one type are OR-ed (a resource matching any of them is exported, once)
    type_filters: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    #: ``_elements``: root elements to keep, ``Type.element`` or ``element`` (empty: whole resources)
    elements: tuple[str, ...] = ()
    #: what ``Prefer: handling=lenient`` let through unapplied, one sentence each (the manifest's error file)
    ignored: tuple[str, ...] = ()

    def kept_elements(self, resource_type: str) -> frozenset[str] | None:
        """The root elements a resource of the type keeps (None: written whole, untagged)."""
        return kept_elements(self.elements, resource_type)

    def filters_for(self, resource_type: str) -> tuple[tuple[tuple[str, str], ...], ...]:
        """The ``_typeFilter`` queries of one type, in the order given (empty: none, the whole type).

        >>> r = ExportRequest(Level.SYSTEM, type_filters=(("Observation", (("code", "a"),)),
        ...                                               ("Condition", (("code", "b"),)),
        ...                                               ("Observation", (("code", "c"),))))
        >>> r.filters_for("Observation")
        ((('code', 'a'),), (('code', 'c'),))
        """
        return tuple(q for t, q in self.type_filters if t == resource_type)

    def to_json(self) -> dict[str, Any]:
        """As stored with the job."""
        return {
            "level": self.level.value,
            "group": self.group_id,
            "types": list(self.types),
            "since": self.since,
            "typeFilters": [[t, [list(p) for p in q]] for t, q in self.type_filters],
            "elements": list(self.elements),
            "ignored": list(self.ignored),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExportRequest:
        """Read back what :meth:`to_json` stored."""
        return cls(
            level=Level(data["level"]),
            group_id=data.get("group"),
            types=tuple(data.get("types") or ()),
            since=data.get("since"),
            type_filters=tuple(
                (str(t), tuple((str(k), str(v)) for k, v in q)) for t, q in data.get("typeFilters") or ()
            ),
            elements=tuple(data.get("elements") or ()),
            ignored=tuple(data.get("ignored") or ()),
        )


def parse_export_request(
    level: Level,
    parameters: Sequence[tuple[str, str]],
    *,
    served_types: Iterable[str],
    group_id: str | None = None,
    lenient: bool = False,
) -> ExportRequest:
    """Check the kick-off parameters (query pairs, or the pairs of a POSTed Parameters resource).

    With ``lenient`` (``Prefer: handling=lenient``) a parameter this server does not take, and an ``_elements``
    name that is not a root element of an exported type, are ignored and said in :attr:`ExportRequest.ignored`
    (the Bulk Data IG: the manifest's error file carries an OperationOutcome for each); every other mistake is
    a 400 either way.

    >>> served = ["Patient", "Observation"]
    >>> r = parse_export_request(Level.SYSTEM, [("_type", "Patient,Observation")], served_types=served)
    >>> r.types
    ('Patient', 'Observation')
    >>> parse_export_request(Level.SYSTEM, [("_outputFormat", "text/csv")], served_types=[])
    Traceback (most recent call last):
    ...
    bcconnect.errors.InvalidRequest: _outputFormat: 'text/csv' is not offered; use application/fhir+ndjson
    """
    served = frozenset(served_types)
    ignored: list[str] = []
    unknown = sorted({name for name, _ in parameters} - ACCEPTED_PARAMETERS)
    if unknown and not lenient:
        raise InvalidRequest(f"$export does not take {', '.join(unknown)} here", expression=unknown)
    ignored += [f"{name}: not a parameter this server's $export takes; ignored" for name in unknown]
    if group_id is not None and not _FHIR_ID.match(group_id):
        raise InvalidRequest(f"{group_id!r} is not a valid Group id", expression=["Group"])
    for name in ("_outputFormat", "_since"):
        if sum(1 for n, _ in parameters if n == name) > 1:
            raise InvalidRequest(f"{name} may be given once", expression=[name])
    output_format = next((v for n, v in parameters if n == "_outputFormat"), None)
    if output_format is not None and output_format.strip() not in OUTPUT_FORMATS:
        raise InvalidRequest(
            f"_outputFormat: {output_format!r} is not offered; use application/fhir+ndjson",
            expression=["_outputFormat"],
        )
    types: list[str] = []
    for name, value in parameters:
        if name != "_type":
            continue
        for item in (part.strip() for part in value.split(",")):
            if not item:
                raise InvalidRequest("_type: an empty resource type", expression=["_type"])
            if item not in served:
                raise InvalidRequest(f"_type: {item!r} is not a resource type served here", expression=["_type"])
            if item not in types:
                types.append(item)
    since = next((v for n, v in parameters if n == "_since"), None)
    if since is not None and not _INSTANT.match(since.strip()):
        raise InvalidRequest(
            f"_since: {since!r} is not a FHIR instant (e.g. 2024-01-31T09:00:00Z)", expression=["_since"]
        )
    filters: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for name, value in parameters:
        if name != "_typeFilter":
            continue
        for item in (part.strip() for part in value.split(",")):
            resource_type, query = _type_filter(item, served)
            if resource_type == "Provenance":
                raise InvalidRequest(
                    "_typeFilter: Provenance is exported with the resources it describes; filter those instead",
                    expression=["_typeFilter"],
                )
            if types and resource_type not in types:
                raise InvalidRequest(
                    f"_typeFilter: {resource_type} is not among the exported types (_type)", expression=["_typeFilter"]
                )
            # several filters of one type are OR-ed (Bulk Data IG v2); the same one twice is one
            if (resource_type, query) not in filters:
                filters.append((resource_type, query))
    elements, invalid = check_elements(
        [v for n, v in parameters if n == "_elements"], exported_types=types or sorted(served)
    )
    if invalid and not lenient:
        raise InvalidRequest(
            "_elements: " + "; ".join(f"{name!r}: {reason}" for name, reason in invalid), expression=["_elements"]
        )
    ignored += [f"_elements: {name!r}: {reason}; ignored" for name, reason in invalid]
    return ExportRequest(
        level=level,
        group_id=group_id,
        types=tuple(types),
        since=since.strip() if since else None,
        type_filters=tuple(filters),
        elements=elements,
        ignored=tuple(ignored),
    )


def _type_filter(item: str, served: frozenset[str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    resource_type, mark, query = item.partition("?")
    if not mark or not query:
        raise InvalidRequest(f"_typeFilter: {item!r} is not <type>?<search query>", expression=["_typeFilter"])
    if resource_type not in served:
        raise InvalidRequest(
            f"_typeFilter: {resource_type!r} is not a resource type served here", expression=["_typeFilter"]
        )
    pairs = tuple(parse_qsl(query, keep_blank_values=True))
    if not pairs:
        raise InvalidRequest(f"_typeFilter: {item!r} has no search parameters", expression=["_typeFilter"])
    shaping = sorted({k for k, _ in pairs if k.split(":")[0] in _RESULT_PARAMETERS})
    if shaping:
        raise InvalidRequest(
            f"_typeFilter: {', '.join(shaping)} shapes results and cannot select them", expression=["_typeFilter"]
        )
    return resource_type, pairs


def parameters_from_resource(resource: Any) -> list[tuple[str, str]]:
    """The kick-off parameters of a POSTed ``Parameters`` resource (``valueString``, ``valueInstant`` …)."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Parameters":
        raise InvalidRequest("a POSTed $export takes a Parameters resource")
    out: list[tuple[str, str]] = []
    for parameter in resource.get("parameter") or ():
        if not isinstance(parameter, Mapping) or not isinstance(parameter.get("name"), str):
            raise InvalidRequest("each Parameters.parameter needs a name")
        values = [v for k, v in parameter.items() if k.startswith("value")]
        if len(values) != 1 or not isinstance(values[0], str):
            raise InvalidRequest(
                f"parameter {parameter['name']!r} needs one string-like value", expression=[parameter["name"]]
            )
        out.append((parameter["name"], values[0]))
    return out
