"""The search parameters we support, read from the packaged R4 definitions (``fhir/search_parameters.json``).

That file is derived from the official R4 SearchParameter bundle by ``scripts/derive_search_parameters.py``.
A parameter whose expression falls outside our FHIRPath subset is left out, so what we advertise in the
CapabilityStatement is exactly what we index.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from bcconnect.search._fhirpath import Expression, UnsupportedExpression, compile_expression


class ParamType(enum.Enum):
    """The FHIR search parameter types we index (composite and special are not supported)."""

    TOKEN = "token"  # noqa: S105 - a FHIR parameter type, not a secret
    STRING = "string"
    DATE = "date"
    REFERENCE = "reference"
    QUANTITY = "quantity"
    URI = "uri"
    NUMBER = "number"


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One search parameter of one resource type (or of every type, for ``_lastUpdated`` and friends)."""

    code: str
    type: ParamType
    expression: Expression
    targets: tuple[str, ...]
    url: str


@dataclass(frozen=True, slots=True)
class Registry:
    """Search parameters per resource type, the patient compartment and summary elements."""

    by_type: Mapping[str, Mapping[str, SearchParam]]
    common: Mapping[str, SearchParam]
    compartment: Mapping[str, tuple[str, ...]]
    summary: Mapping[str, frozenset[str]]

    @property
    def resource_types(self) -> tuple[str, ...]:
        """Every resource type served, sorted."""
        return tuple(sorted(self.by_type))

    def params(self, resource_type: str) -> dict[str, SearchParam]:
        """Every parameter searchable on ``resource_type``: its own and the common ones."""
        return {**self.common, **self.by_type.get(resource_type, {})}

    def param(self, resource_type: str, code: str) -> SearchParam | None:
        """One parameter, or None when ``resource_type`` has no parameter ``code``."""
        own = self.by_type.get(resource_type, {})
        return own.get(code) or self.common.get(code)


#: parameters whose meaning we cannot honour with an index (phonetic matching needs an algorithm we lack)
_NOT_OFFERED = frozenset({"phonetic"})


def _build(raw: Mapping[str, Any], choice_elements: frozenset[str]) -> dict[str, SearchParam]:
    out: dict[str, SearchParam] = {}
    for code, spec in raw.items():
        kind = spec["type"]
        if kind not in {t.value for t in ParamType} or code in _NOT_OFFERED:
            continue
        try:
            expression = compile_expression(spec["expression"], choice_elements)
        except UnsupportedExpression:
            continue  # not indexable with our subset: not advertised either
        out[code] = SearchParam(code, ParamType(kind), expression, tuple(spec["target"]), spec["url"])
    return out


@cache
def registry() -> Registry:
    """The registry built from the packaged definitions (loaded once)."""
    text = resources.files("bcconnect.fhir").joinpath("search_parameters.json").read_text(encoding="utf-8")
    data = json.loads(text)
    params = data["parameters"]
    choice = frozenset(data["choiceElements"])
    common = _build(params["Resource"], choice)
    by_type = {t: _build(p, choice) for t, p in params.items() if t != "Resource"}
    return Registry(
        by_type=by_type,
        common=common,
        compartment={t: tuple(p) for t, p in data["patientCompartment"].items()},
        summary={t: frozenset(e) for t, e in data["summaryElements"].items()},
    )
