"""``_elements`` on a Bulk Data kick-off: which root elements each exported resource keeps.

The Bulk Data IG (v2): a comma-separated list of element names, each ``[type].[element]`` or ``[element]``,
root elements only; an unqualified name applies to every exported resource that has it. A subsetted resource
keeps the named elements plus the mandatory ones (``resourceType``, ``id``, ``meta`` and every element with
min cardinality >= 1 in its base definition, so each line is still a valid resource) and carries the
``SUBSETTED`` tag in ``meta.tag``, so no one mistakes it for the whole resource. Named elements only for other
types (every name type-qualified) leave a type not named whole, untagged.

Subsetting runs on what the screen served (a redacted or re-pointed resource), never on the stored row: it can
only take elements away. The lists come from the R4 definitions, derived into ``fhir/elements.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

import orjson

#: the tag a subsetted resource carries (what ``_summary``/``_elements`` on a search put there too)
SUBSETTED: Final = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
#: kept in every resource whatever is asked
ALWAYS: Final = frozenset({"resourceType", "id", "meta"})


@dataclass(frozen=True, slots=True)
class ElementDefinitions:
    """Per resource type: its root elements, the mandatory ones, and which are choices (``value[x]``)."""

    root: Mapping[str, frozenset[str]]
    mandatory: Mapping[str, frozenset[str]]
    choices: Mapping[str, frozenset[str]]


@cache
def element_definitions() -> ElementDefinitions:
    """The packaged R4 element lists (``fhir/elements.json``)."""
    text = resources.files("bcconnect.fhir").joinpath("elements.json").read_text(encoding="utf-8")
    data = json.loads(text)

    def sets(key: str) -> dict[str, frozenset[str]]:
        return {t: frozenset(names) for t, names in data[key].items()}

    return ElementDefinitions(sets("rootElements"), sets("mandatoryElements"), sets("choiceElements"))


def check_elements(
    values: Iterable[str], *, exported_types: Sequence[str]
) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """The valid names of ``_elements`` values (in order, each once; ``value[x]`` is ``value``), and each invalid
    one with the reason.

    >>> names = ["Observation.code,id", "Observation.code.text"]
    >>> valid, invalid = check_elements(names, exported_types=["Observation"])
    >>> valid
    ('Observation.code', 'id')
    >>> [name for name, _ in invalid]
    ['Observation.code.text']
    """
    defs = element_definitions()
    types = [t for t in exported_types if t in defs.root]
    valid: list[str] = []
    invalid: list[tuple[str, str]] = []
    for value in values:
        for raw in value.split(","):
            item = raw.strip()
            if item.endswith("[x]"):
                item = item[:-3]
            reason = _invalid(item, types, defs)
            if reason is not None:
                invalid.append((raw.strip(), reason))
            elif item not in valid:
                valid.append(item)
    return tuple(valid), invalid


def _invalid(item: str, types: Sequence[str], defs: ElementDefinitions) -> str | None:
    if not item:
        return "an empty element name"
    parts = item.split(".")
    if len(parts) > 2 or (len(parts) == 2 and not parts[0][:1].isupper()):
        return "only root elements (Type.element or element) can be named; use _typeFilter to select by nested ones"
    if len(parts) == 2:
        resource_type, element = parts
        if resource_type not in types:
            return f"{resource_type} is not among the exported resource types"
        if not _known(element, resource_type, defs):
            return f"{resource_type} has no element {element!r}"
        return None
    if not any(_known(item, t, defs) for t in types):
        return f"no exported resource type has an element {item!r}"
    return None


def _known(element: str, resource_type: str, defs: ElementDefinitions) -> bool:
    """A root element of the type: by name, or a choice element's form (``valueQuantity`` of ``value[x]``)."""
    if element in defs.root[resource_type]:
        return True
    stem = next((element[:i] for i, char in enumerate(element) if char.isupper()), "")
    return bool(stem) and stem in defs.choices[resource_type]


def kept_elements(elements: Sequence[str], resource_type: str) -> frozenset[str] | None:
    """The root elements a resource of ``resource_type`` keeps under ``_elements`` (None: it is not subsetted).

    >>> sorted(kept_elements(("Observation.valueQuantity", "Observation.code", "id"), "Observation") or ())
    ['code', 'id', 'meta', 'resourceType', 'status', 'valueQuantity']
    >>> kept_elements(("Observation.code",), "Patient") is None
    True
    """
    if not elements:
        return None
    defs = element_definitions()
    everywhere = {e for e in elements if "." not in e}
    own = {e.split(".", 1)[1] for e in elements if e.startswith(f"{resource_type}.")}
    if not everywhere and not own:
        return None
    return frozenset(ALWAYS | defs.mandatory.get(resource_type, frozenset()) | everywhere | own)


def _keeps(key: str, keep: frozenset[str], choices: frozenset[str]) -> bool:
    name = key[1:] if key.startswith("_") else key  # ``_status``: the extensions of the primitive ``status``
    if name in keep:
        return True
    # a choice element's form (valueQuantity) is kept with its stem (value)
    for position, char in enumerate(name):
        if char.isupper():
            return position > 0 and name[:position] in keep and name[:position] in choices
    return False


def subset_line(line: bytes, keep: frozenset[str], resource_type: str) -> bytes:
    """One served resource (an NDJSON line, with its newline) with only ``keep``'s root elements, tagged
    SUBSETTED.

    >>> subset_line(b'{"resourceType":"Observation","id":"o","status":"final","_status":{"id":"s"},'
    ...             b'"code":{"text":"x"},"valueQuantity":{"value":1},"note":[{"text":"n"}]}\\n',
    ...             frozenset({"resourceType", "id", "meta", "status", "code", "value"}), "Observation")[:-1]
    ... # doctest: +ELLIPSIS
    b'{"resourceType":"Observation",...,"valueQuantity":{"value":1},"meta":{"tag":[{"system":...,"code":"SUBSETTED"}]}}'
    """
    resource: dict[str, Any] = orjson.loads(line)
    choices = element_definitions().choices.get(resource_type, frozenset())
    out = {k: v for k, v in resource.items() if _keeps(k, keep, choices)}
    meta = dict(out.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(t.get("system") == SUBSETTED["system"] and t.get("code") == "SUBSETTED" for t in tags):
        tags.append(SUBSETTED)
    meta["tag"] = tags
    out["meta"] = meta
    return orjson.dumps(out) + b"\n"
