"""Cohort definitions as data: a small declarative TOML format (``definitions.toml``, docs/cohorts.md).

A definition is ``[cohort.<id>]`` with ``title``, ``description`` and a ``rule``. A rule is one table with one
key — a criterion or a combinator::

    conditions           = { sets = ["diabetes", "copd", ...], min = 3 }   # distinct listed conditions
    emergency_admissions = { min = 3, months = 12 }                         # distinct stays, across trusts
    ae_attendances       = { min = 5, months = 12 }                         # class EMER, across trusts
    age                  = { min = 65, max = 120 }                          # whole years at the computation
    borough              = ["Dudley", "Sandwell"]                           # from the postcode district
    practice             = ["M88001"]                                       # registered GP practice (ODS)
    all = [rule, ...]    any = [rule, ...]    not = rule

Every error names the cohort and the key, and all are reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bcconnect.config import parse_toml, read_toml
from bcconnect.errors import ConfigError

#: the boroughs a ``borough`` criterion may name
BOROUGHS = ("Dudley", "Sandwell", "Walsall", "Wolverhampton")
_COMBINATORS = ("all", "any", "not")
_CRITERIA = ("conditions", "emergency_admissions", "ae_attendances", "age", "borough", "practice")


@dataclass(frozen=True, slots=True)
class Rule:
    """One node of a definition: a criterion (``kind`` in the criteria) or a combinator of ``parts``."""

    kind: str
    #: conditions: the set names; borough/practice: the values
    names: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    months: int = 12
    parts: tuple[Rule, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The rule as the JSON object the Group's definition extension carries (the TOML's shape)."""
        if self.kind in ("all", "any"):
            return {self.kind: [p.as_json() for p in self.parts]}
        if self.kind == "not":
            return {"not": self.parts[0].as_json()}
        if self.kind in ("borough", "practice"):
            return {self.kind: list(self.names)}
        body: dict[str, Any] = {}
        if self.kind == "conditions":
            body["sets"] = list(self.names)
        if self.minimum is not None:
            body["min"] = self.minimum
        if self.maximum is not None:
            body["max"] = self.maximum
        if self.kind in ("emergency_admissions", "ae_attendances"):
            body["months"] = self.months
        return {self.kind: body}

    def window_months(self) -> set[int]:
        """Every look-back window the rule uses (months)."""
        out = {self.months} if self.kind in ("emergency_admissions", "ae_attendances") else set()
        for part in self.parts:
            out |= part.window_months()
        return out


@dataclass(frozen=True, slots=True)
class CohortDefinition:
    """One cohort: its id (the Group id), title, description and rule."""

    id: str
    title: str
    description: str
    rule: Rule

    def as_json(self) -> dict[str, Any]:
        """The definition as computed (stored with the run, carried by the Group)."""
        return {"id": self.id, "title": self.title, "rule": self.rule.as_json()}


@dataclass(frozen=True, slots=True)
class Definitions:
    """The condition code sets and the cohorts defined over them."""

    condition_sets: dict[str, frozenset[str]]
    cohorts: tuple[CohortDefinition, ...]
    source: str = "packaged"
    #: code → the set names it belongs to (built once)
    set_of_code: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def cohort(self, cohort_id: str) -> CohortDefinition | None:
        """The cohort named ``cohort_id``, if defined."""
        return next((c for c in self.cohorts if c.id == cohort_id), None)


def _ident_ok(text: str) -> bool:
    return 0 < len(text) <= 64 and all(ch.isalnum() or ch in "-." for ch in text) and text.isascii()


def _count(value: object, where: str, errors: list[str], key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        errors.append(f"{where}: {key} must be a non-negative integer, not {value!r}")
        return None
    return value


def _parse_rule(raw: object, where: str, sets: dict[str, frozenset[str]], errors: list[str]) -> Rule:
    if not isinstance(raw, dict) or len(raw) != 1:
        errors.append(f"{where}: a rule is a table with exactly one key ({', '.join((*_CRITERIA, *_COMBINATORS))})")
        return Rule("all")
    ((kind, body),) = raw.items()
    here = f"{where}.{kind}"
    if kind in ("all", "any"):
        if not isinstance(body, list) or not body:
            errors.append(f"{here}: a non-empty list of rules")
            return Rule(kind)
        return Rule(kind, parts=tuple(_parse_rule(p, f"{here}[{i}]", sets, errors) for i, p in enumerate(body)))
    if kind == "not":
        return Rule("not", parts=(_parse_rule(body, here, sets, errors),))
    if kind in ("borough", "practice"):
        values = [body] if isinstance(body, str) else body
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            errors.append(f"{here}: a name or a list of names")
            return Rule(kind)
        if kind == "borough":
            unknown = [v for v in values if v not in BOROUGHS]
            if unknown:
                errors.append(f"{here}: unknown borough {', '.join(unknown)} (known: {', '.join(BOROUGHS)})")
        return Rule(kind, names=tuple(values))
    if kind not in _CRITERIA:
        errors.append(f"{where}: unknown rule {kind!r} (known: {', '.join((*_CRITERIA, *_COMBINATORS))})")
        return Rule("all")
    if not isinstance(body, dict):
        errors.append(f"{here}: a table such as {{ min = 3 }}")
        return Rule(kind)
    allowed = {"conditions": {"sets", "min", "max"}, "age": {"min", "max"}}.get(kind, {"min", "max", "months"})
    extra = sorted(set(body) - allowed)
    if extra:
        errors.append(f"{here}: unknown key {', '.join(extra)} (known: {', '.join(sorted(allowed))})")
    minimum = _count(body.get("min"), here, errors, "min")
    maximum = _count(body.get("max"), here, errors, "max")
    if minimum is None and maximum is None:
        errors.append(f"{here}: give min, max or both")
    months = _count(body.get("months", 12), here, errors, "months") or 12
    names: tuple[str, ...] = ()
    if kind == "conditions":
        listed = body.get("sets", sorted(sets))
        if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
            errors.append(f"{here}: sets is a list of condition set names")
            listed = []
        unknown = [n for n in listed if n not in sets]
        if unknown:
            errors.append(f"{here}: unknown condition set {', '.join(unknown)}")
        names = tuple(listed)
    return Rule(kind, names=names, minimum=minimum, maximum=maximum, months=months)


def parse_definitions(data: dict[str, Any], *, source: str = "packaged") -> Definitions:
    """Definitions from parsed TOML; every problem at once in one ConfigError."""
    errors: list[str] = []
    raw_sets = data.get("condition_sets", {})
    sets: dict[str, frozenset[str]] = {}
    if not isinstance(raw_sets, dict):
        errors.append("condition_sets: a table of name = [codes]")
        raw_sets = {}
    for name, codes in raw_sets.items():
        if not isinstance(codes, list) or not codes or not all(isinstance(c, str) and c.isdigit() for c in codes):
            errors.append(f"condition_sets.{name}: a non-empty list of SNOMED CT concept ids (digits, as text)")
            continue
        sets[name] = frozenset(codes)
    cohorts: list[CohortDefinition] = []
    raw_cohorts = data.get("cohort", {})
    if not isinstance(raw_cohorts, dict) or not raw_cohorts:
        errors.append("cohort: define at least one [cohort.<id>] table")
        raw_cohorts = {}
    for cohort_id, body in raw_cohorts.items():
        where = f"cohort.{cohort_id}"
        if not _ident_ok(cohort_id):
            errors.append(f"{where}: an id is 1–64 letters, digits, '-' or '.' (it becomes the Group id)")
        if not isinstance(body, dict):
            errors.append(f"{where}: a table with title and rule")
            continue
        unknown = sorted(set(body) - {"title", "description", "rule"})
        if unknown:
            errors.append(f"{where}: unknown key {', '.join(unknown)}")
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            errors.append(f"{where}: title is required")
            title = cohort_id
        description = body.get("description", "")
        if "rule" not in body:
            errors.append(f"{where}: rule is required")
            continue
        rule = _parse_rule(body["rule"], f"{where}.rule", sets, errors)
        cohorts.append(CohortDefinition(cohort_id, title, str(description), rule))
    if errors:
        raise ConfigError("cohort definitions: " + "; ".join(errors), file=source)
    set_of_code: dict[str, list[str]] = {}
    for name, codes in sets.items():
        for code in codes:
            set_of_code.setdefault(code, []).append(name)
    return Definitions(sets, tuple(cohorts), source, {k: tuple(v) for k, v in set_of_code.items()})


def load_definitions(path: Path | None = None) -> Definitions:
    """The definitions in ``path`` (``[cohorts] definitions``), or the packaged ``definitions.toml``."""
    if path is None:
        text = resources.files("bcconnect.cohorts").joinpath("definitions.toml").read_text(encoding="utf-8")
        return parse_definitions(parse_toml(text, origin="bcconnect.cohorts/definitions.toml"))
    return parse_definitions(read_toml(path), source=str(path))


def load_places() -> dict[str, str]:
    """Postcode district → borough (the packaged ``places.toml``)."""
    text = resources.files("bcconnect.cohorts").joinpath("places.toml").read_text(encoding="utf-8")
    districts = parse_toml(text, origin="bcconnect.cohorts/places.toml")["districts"]
    return {str(k): str(v) for k, v in districts.items()}


def borough_of(postcode: str | None, places: dict[str, str]) -> str | None:
    """The borough of a postcode (by its district, the outward code), or None.

    >>> borough_of("dy4 7ab", {"DY4": "Sandwell"})
    'Sandwell'
    >>> borough_of("DY47AB", {"DY4": "Sandwell"})  # written without a space: the inward code is the last 3
    'Sandwell'
    """
    if not postcode:
        return None
    text = postcode.upper().strip()
    district = text.split()[0] if " " in text else text[:-3]
    return places.get(district)
