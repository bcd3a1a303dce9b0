"""``bcconnect mappings lint``: what is wrong or suspicious in a mapping set beyond loading errors.

* **schema** — every loading problem (file, line, field, what was expected);
* **determinism** — ``uuid4``/random/clock use anywhere in a mapping file, or a resource key that reads
  ``$received_at``: ids must be uuid5 over source system, type and key, so a re-ingest updates;
* **missing golden cases** — a mapping file no golden case exercises;
* **unused rules** — rules that wrote nothing in any golden case (dead rules, or a missing case);
* **unused templates and ConceptMaps**.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bcconnect.errors import MappingDefinitionError
from bcconnect.mapping._rules import Rule
from bcconnect.mapping._sources import VariableReader
from bcconnect.mapping.engine import MappingSet
from bcconnect.mapping.golden import load_cases, run_case
from bcconnect.mapping.loader import load_mapping_set

_NONDETERMINISTIC: Final = re.compile(r"\b(uuid4|uuid1|random|now\(\)|datetime\.now|time\.time)\b")


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint finding: ``error`` fails the lint, ``warning`` is reported."""

    level: str
    file: str
    line: int | None
    check: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{self.level}: {where}: [{self.check}] {self.message}"


def _walk(rules: tuple[Rule, ...]) -> Iterator[Rule]:
    for rule in rules:
        yield rule
        yield from _walk(rule.children)


def lint_set(set_dir: Path) -> list[Finding]:
    """Every finding for the mapping set in ``set_dir``."""
    try:
        ms = load_mapping_set(set_dir)
    except MappingDefinitionError as exc:
        return [Finding("error", p.file, p.line, "schema", f"{p.field}: {p.message}") for p in exc.problems]
    findings = _determinism(set_dir, ms)
    findings += _coverage(set_dir, ms)
    maps_used = ms.terminology.used
    for cmap in ms.terminology.maps:
        if cmap.id not in maps_used and cmap.url not in maps_used:
            findings.append(
                Finding("warning", cmap.file, None, "unused-conceptmap", f"no rule translates with {cmap.id}")
            )
    return findings


def _determinism(set_dir: Path, ms: MappingSet) -> list[Finding]:
    out: list[Finding] = []
    for path in sorted(set_dir.glob("*.yaml")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0]
            if _NONDETERMINISTIC.search(code):
                out.append(Finding("error", str(path), number, "determinism",
                                   "random or clock-based values make ids and content change on re-ingest; "
                                   "ids are uuid5 over source system, type and key"))  # fmt: skip
    for mfile in ms.files:
        for spec in mfile.resources:
            parts = spec.key.parts if spec.key is not None else ()
            if any(isinstance(p, VariableReader) and p.name == "received_at" for p in parts):
                out.append(Finding("error", str(mfile.path), spec.line, "determinism",
                                   f"the key of {spec.resource_type} reads $received_at: a re-ingest would "
                                   "create a new resource instead of updating"))  # fmt: skip
    return out


def _coverage(set_dir: Path, ms: MappingSet) -> list[Finding]:
    out: list[Finding] = []
    try:
        cases = load_cases(set_dir)
    except MappingDefinitionError as exc:
        return [Finding("error", p.file, p.line, "golden", f"{p.field}: {p.message}") for p in exc.problems]
    covered: set[str] = set()
    fired: set[str] = set()
    for case in cases:
        if case.record_type not in ms.record_types:
            out.append(Finding("error", str(case.input), None, "golden",
                               f"case {case.name}: no mapping file maps {case.record_type!r}"))  # fmt: skip
            continue
        covered.add(ms.file_for(case.record_type).id)
        outcome = run_case(ms, case, explain=True)
        if outcome.result is not None:
            fired.update(entry.rule.rsplit(": ", 1)[-1] for trace in outcome.result.trace for entry in trace)
    for mfile in ms.files:
        if mfile.id not in covered:
            out.append(Finding("error", str(mfile.path), None, "golden", f"{mfile.id} has no golden case"))
            continue
        idle = [
            rule
            for spec in mfile.resources
            for rule in _walk(spec.rules)
            # a group or template call is as used as the rules inside it
            if not rule.children and "→ template" not in rule.rid and rule.rid not in fired
        ]
        if idle:
            lines = ", ".join(str(_line(r.rid)) for r in idle)
            out.append(Finding("warning", str(mfile.path), _line(idle[0].rid), "unused-rule",
                               f"{len(idle)} rule(s) wrote nothing in any golden case (lines {lines}): "
                               "dead rules, or a golden case is missing"))  # fmt: skip
    return out


def templates_used(ms: MappingSet) -> set[str]:
    """Names of the templates the set's rules call."""
    return {r.template_name for f in ms.files for s in f.resources for r in _walk(s.rules) if r.template_name}


def lint_all(set_dirs: list[Path]) -> list[Finding]:
    """Findings for several sets, plus templates no set uses (templates files are shared between sets)."""
    findings: list[Finding] = []
    used: set[str] = set()
    defined: dict[str, tuple[str, int]] = {}
    for set_dir in set_dirs:
        findings += lint_set(set_dir)
        try:
            ms = load_mapping_set(set_dir)
        except MappingDefinitionError:
            continue
        used |= templates_used(ms)
        defined.update(ms_templates(ms))
    for name, (file, line) in sorted(defined.items()):
        if name not in used:
            findings.append(Finding("warning", file, line, "unused-template", f"template {name} is used by no set"))
    return findings


def ms_templates(ms: MappingSet) -> dict[str, tuple[str, int]]:
    """Every template the set loaded, by name, with where it is defined."""
    return {name: (t.file, t.line) for name, t in ms.templates.items()}


def _line(rid: str) -> int | None:
    match = re.search(r":(\d+)\)?$", rid)
    return int(match.group(1)) if match else None
