"""Sensitivity rules as data: which codes make a record sensitive, and the label each earns.

The rules are FHIR ValueSets shipped in ``bcconnect/security/sensitivity/`` (HIV, sexual health, fertility,
termination of pregnancy, gender identity, safeguarding), by SNOMED CT, LOINC, treatment function and local
codes; each names the ``meta.security`` label it gives (extension ``security-label``). Ingest calls
:func:`label_sensitive` on every batch before it is stored:

1. a resource carrying any listed code anywhere (code, value, reason, medication, service type, category …)
   gets the label;
2. within the batch, a resource in the clinical context of a labelled one gets the label too: it points at it
   through ``encounter``, ``reasonReference``, ``basedOn``, ``result``, ``partOf``, ``focus``,
   ``derivedFrom``, ``hasMember``, a diagnosis or an evidence detail (so an antiretroviral prescription whose
   reason is the HIV diagnosis is labelled even when the drug is not listed), and an Encounter a labelled
   resource was recorded in is labelled with everything recorded in it.

Context that crosses batches (the diagnosis arrives after its test results) is caught at read time by the
screen (``Visibility.context_params``), which withholds what points at a labelled resource or encounter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources as package_files
from typing import Any

import orjson

SECURITY_LABEL_EXTENSION = "https://bcconnect.nhs.uk/StructureDefinition/security-label"
#: elements naming another resource whose sensitivity a resource shares
_CONTEXT_ELEMENTS = (
    "encounter",
    "context",
    "reasonReference",
    "basedOn",
    "result",
    "partOf",
    "focus",
    "derivedFrom",
    "hasMember",
    "diagnosis",
    "evidence",
    "addresses",
)

Label = tuple[str, str]


@dataclass(frozen=True, slots=True)
class SensitiveCodes:
    """``(system, code)`` → the label it earns, from the packaged ValueSets."""

    labels: Mapping[tuple[str, str], Label]
    #: ValueSet url → how many codes it lists (for ``explain`` and the docs)
    sets: Mapping[str, int]

    @classmethod
    def from_value_sets(cls, value_sets: Iterable[Mapping[str, Any]]) -> SensitiveCodes:
        """Build from ValueSet resources (each with the ``security-label`` extension)."""
        labels: dict[tuple[str, str], Label] = {}
        sets: dict[str, int] = {}
        for vs in value_sets:
            label = next(
                (
                    (str(e["valueCoding"]["system"]), str(e["valueCoding"]["code"]))
                    for e in vs.get("extension", [])
                    if e.get("url") == SECURITY_LABEL_EXTENSION
                ),
                None,
            )
            if label is None:
                raise ValueError(f"ValueSet {vs.get('url')} names no security-label")
            count = 0
            for include in vs.get("compose", {}).get("include", []):
                for concept in include.get("concept", []):
                    labels[(str(include["system"]), str(concept["code"]))] = label
                    count += 1
            sets[str(vs.get("url"))] = count
        return cls(labels, sets)


@cache
def packaged_codes() -> SensitiveCodes:
    """The rules shipped with the engine."""
    folder = package_files.files("bcconnect.security") / "sensitivity"
    value_sets = [orjson.loads(f.read_bytes()) for f in sorted(folder.iterdir(), key=lambda f: f.name)]
    return SensitiveCodes.from_value_sets(v for v in value_sets if v.get("resourceType") == "ValueSet")


def _codings(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        system, code = node.get("system"), node.get("code")
        if isinstance(system, str) and isinstance(code, str):
            yield system, code
        for key, value in node.items():
            if key != "meta":
                yield from _codings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _codings(value)


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _add_labels(resource: dict[str, Any], labels: Iterable[Label]) -> bool:
    meta = resource.setdefault("meta", {})
    present = meta.setdefault("security", [])
    have = {(str(x.get("system")), str(x.get("code"))) for x in present if isinstance(x, dict)}
    added = False
    for system, code in sorted(set(labels) - have):
        present.append({"system": system, "code": code})
        added = True
    return added


def direct_labels(resource: Mapping[str, Any], codes: SensitiveCodes | None = None) -> set[Label]:
    """The labels a resource's own codes earn."""
    table = (codes or packaged_codes()).labels
    return {table[c] for c in _codings(resource) if c in table}


def label_sensitive(batch: list[dict[str, Any]], codes: SensitiveCodes | None = None) -> int:
    """Label the batch in place (own codes, then clinical context within the batch); returns resources labelled."""
    codes = codes or packaged_codes()
    earned: dict[str, set[Label]] = {}
    for resource in batch:
        found = direct_labels(resource, codes)
        if found:
            earned[f"{resource.get('resourceType')}/{resource.get('id')}"] = found
    # an encounter a labelled resource was recorded in is sensitive, and so is all that points at labelled ones
    for _ in range(3):  # context chains are short (result → report → encounter); stop when nothing changes
        grew = False
        for resource in batch:
            key = f"{resource.get('resourceType')}/{resource.get('id')}"
            inherited: set[Label] = set()
            for element in _CONTEXT_ELEMENTS:
                for ref in _references(resource.get(element)):
                    inherited |= earned.get(ref, set())
            encounter = resource.get("encounter")
            target = encounter.get("reference") if isinstance(encounter, dict) else None
            own = earned.get(key, set())
            if isinstance(target, str) and own and not earned.get(target, set()) >= own:
                earned.setdefault(target, set()).update(own)
                grew = True
            if inherited and not earned.get(key, set()) >= inherited:
                earned.setdefault(key, set()).update(inherited)
                grew = True
        if not grew:
            break
    labelled = 0
    for resource in batch:
        gained = earned.get(f"{resource.get('resourceType')}/{resource.get('id')}")
        if gained and _add_labels(resource, gained):
            labelled += 1
    return labelled
