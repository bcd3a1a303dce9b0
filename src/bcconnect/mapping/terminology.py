"""Terminology translation with FHIR ``ConceptMap`` files (local codes → SNOMED CT / LOINC / dm+d / ODS).

A translation keeps the source coding and adds the target coding. What happens to a code a map does not know
is the map group's ``unmapped`` element, read the FHIR way:

* no ``unmapped`` → **error**: the record is quarantined (reason ``terminology``) naming map, system, code;
* ``unmapped.mode = provided`` → **keep-local**: the source coding is kept alone;
* ``unmapped.mode = fixed`` → **default code**: ``unmapped.code`` / ``unmapped.display`` in the target system.

Every unmapped code met is counted, so :meth:`ConceptMaps.unmapped_report` lists them by frequency.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bcconnect.errors import DefinitionProblem, MappingError, ReasonCode
from bcconnect.mapping._yaml import load_yaml

ERROR: Final = "error"
KEEP_LOCAL: Final = "keep-local"
DEFAULT_CODE: Final = "default-code"


class TerminologyError(MappingError):
    """A code has no translation and its map's unmapped policy is ``error``."""

    reason = ReasonCode.TERMINOLOGY


@dataclass(frozen=True, slots=True)
class UnmappedCode:
    """One local code no map translated, with how often it was met."""

    concept_map: str
    system: str
    code: str
    count: int


@dataclass(frozen=True, slots=True)
class _Group:
    source: str
    target: str
    codes: dict[str, dict[str, str]]  # source code → target coding
    policy: str
    default: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class ConceptMap:
    """One loaded ConceptMap: its groups by source system."""

    id: str
    url: str
    file: str
    groups: dict[str, _Group]
    #: the code systems this map translates into (computed once: every translated coding asks)
    target_systems: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_systems", frozenset(g.target for g in self.groups.values()))


class ConceptMaps:
    """The ConceptMaps of a mapping set, by id and by canonical url, with the unmapped-code counter."""

    def __init__(self, maps: list[ConceptMap]) -> None:
        self._by_ref: dict[str, ConceptMap] = {}
        for cmap in maps:
            self._by_ref[cmap.id] = cmap
            self._by_ref[cmap.url] = cmap
        self.maps = maps
        self._unmapped: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()
        self.used: set[str] = set()

    def get(self, ref: str) -> ConceptMap | None:
        """The map named by id or canonical url."""
        return self._by_ref.get(ref)

    def translate(self, ref: str, concept: dict[str, Any]) -> dict[str, Any]:
        """A CodeableConcept with the target coding added beside the source coding (see module doc)."""
        cmap = self._by_ref[ref]
        codings: list[dict[str, Any]] = list(concept.get("coding") or ())
        targets = cmap.target_systems
        if any(c.get("system") in targets for c in codings):
            return concept
        added: list[dict[str, Any]] = []
        local: tuple[str, str] | None = None
        for coding in codings:
            group = cmap.groups.get(coding.get("system", ""))
            if group is None:
                continue
            code = str(coding.get("code", ""))
            hit = group.codes.get(code)
            if hit is not None:
                added.append({"system": group.target, **hit})
                continue
            local = (group.source, code)
            self._count(cmap.id, group.source, code)
            if group.policy == DEFAULT_CODE and group.default is not None:
                added.append({"system": group.target, **group.default})
            elif group.policy == ERROR:
                raise TerminologyError(
                    f"ConceptMap {cmap.id} has no translation for code {code!r} of {group.source} "
                    "(unmapped policy: error)"
                )
        if local is None and not added:
            systems = sorted({str(c.get("system")) for c in codings})
            self._count(cmap.id, ",".join(systems) or "(none)", "(no coding in a source system)")
            if all(g.policy == ERROR for g in cmap.groups.values()):
                raise TerminologyError(
                    f"ConceptMap {cmap.id} translates {sorted(cmap.groups)}; the concept has codings in {systems} only"
                )
        if not added:
            return concept
        out = dict(concept)
        out["coding"] = codings + added
        return out

    def _count(self, map_id: str, system: str, code: str) -> None:
        with self._lock:
            self._unmapped[(map_id, system, code)] += 1

    def unmapped_report(self) -> list[UnmappedCode]:
        """Unmapped codes met since load (or the last reset), most frequent first."""
        with self._lock:
            items = self._unmapped.most_common()
        return [UnmappedCode(m, s, c, n) for (m, s, c), n in items]

    def reset_report(self) -> None:
        """Forget the unmapped codes counted so far."""
        with self._lock:
            self._unmapped.clear()


def load_concept_maps(directory: Path, problems: list[DefinitionProblem]) -> list[ConceptMap]:
    """Every ``*.json`` ConceptMap in ``directory``; each problem (with its line) is appended to ``problems``."""
    maps: list[ConceptMap] = []
    if not directory.is_dir():
        return maps
    for path in sorted(directory.glob("*.json")):
        cmap = _load_one(path, problems)
        if cmap is not None:
            maps.append(cmap)
    return maps


def _load_one(path: Path, problems: list[DefinitionProblem]) -> ConceptMap | None:
    # JSON is YAML, so the located loader gives ConceptMap files line numbers too.
    before = len(problems)
    doc = load_yaml(path, problems)
    file = str(path)
    if len(problems) > before:
        return None

    def problem(node: Any, field: str, message: str) -> None:
        problems.append(DefinitionProblem(file, getattr(node, "line", None), field, message))

    if not isinstance(doc, dict) or doc.get("resourceType") != "ConceptMap":
        problem(doc, "resourceType", "expected a FHIR ConceptMap (resourceType 'ConceptMap')")
        return None
    _validate_model(doc, file, problems)
    groups: dict[str, _Group] = {}
    for gi, group in enumerate(doc.get("group") or ()):
        field = f"group[{gi}]"
        source, target = group.get("source"), group.get("target")
        if not source or not target:
            problem(group, field, "expected both 'source' and 'target' code system urls")
            continue
        codes: dict[str, dict[str, str]] = {}
        for ei, element in enumerate(group.get("element") or ()):
            tgts = [t for t in element.get("target") or () if t.get("code")]
            if not element.get("code") or len(tgts) != 1:
                problem(element, f"{field}.element[{ei}]", "expected a 'code' and exactly one target with a code")
                continue
            if element["code"] in codes:
                problem(element, f"{field}.element[{ei}].code", f"code {element['code']!r} is mapped twice")
            hit = {"code": str(tgts[0]["code"])}
            if tgts[0].get("display"):
                hit["display"] = str(tgts[0]["display"])
            codes[str(element["code"])] = hit
        unmapped = group.get("unmapped")
        policy, default = ERROR, None
        if unmapped is not None:
            mode = unmapped.get("mode")
            if mode == "provided":
                policy = KEEP_LOCAL
            elif mode == "fixed" and unmapped.get("code"):
                policy = DEFAULT_CODE
                default = {"code": str(unmapped["code"])}
                if unmapped.get("display"):
                    default["display"] = str(unmapped["display"])
            else:
                problem(
                    unmapped,
                    f"{field}.unmapped",
                    "expected mode 'provided' (keep-local) or 'fixed' with a code",
                )
        groups[str(source)] = _Group(str(source), str(target), codes, policy, default)
    if not doc.get("id") or not doc.get("url"):
        problem(doc, "id", "a ConceptMap needs an 'id' and a canonical 'url' (rules name it by either)")
        return None
    return ConceptMap(str(doc["id"]), str(doc["url"]), file, groups)


def _validate_model(doc: dict[str, Any], file: str, problems: list[DefinitionProblem]) -> None:
    from fhir.resources.R4B.conceptmap import ConceptMap as ConceptMapModel
    from pydantic import ValidationError as PydanticValidationError

    try:
        ConceptMapModel.model_validate(doc)
    except PydanticValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(DefinitionProblem(file, getattr(doc, "line", None), loc, err["msg"]))
