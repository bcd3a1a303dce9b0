"""``load_mapping_set``: read a mapping set directory, collecting every problem in every file first.

Layout of ``mappings/<set>/``::

    mapping-set.yaml     id, version, format (fhir | json | hl7v2), templates, security, description
    <record>.yaml        one mapping file per source record type (header + resources + rules)
    conceptmaps/*.json   FHIR ConceptMaps (local codes → SNOMED CT / LOINC / dm+d / ODS)
    golden/cases.yaml    golden cases: input record → expected resources

YAML (not TOML) because PyYAML's composer gives every node its line, so every problem names its line, and
because nested lists of rules read naturally in YAML.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

from bcconnect.errors import DefinitionProblem, MappingDefinitionError
from bcconnect.fhir.ukcore import profile_for
from bcconnect.mapping._compile import Compiler, compile_template
from bcconnect.mapping._paths import SourcePath, compile_source
from bcconnect.mapping._rules import Template
from bcconnect.mapping._sources import FORMATS, compile_reader
from bcconnect.mapping._yaml import LocDict, load_yaml
from bcconnect.mapping.engine import MappingFile, MappingSet, ResourceSpec
from bcconnect.mapping.security import SecurityRules, load_security_rules
from bcconnect.mapping.terminology import ConceptMaps, load_concept_maps
from bcconnect.mapping.validation import Validator, _model

SET_FILE: Final = "mapping-set.yaml"
_VERSION: Final = re.compile(r"\d+\.\d+\.\d+")
_FILE_KEYS: Final = frozenset({"id", "version", "description", "source", "resources"})
_RESOURCE_KEYS: Final = frozenset(
    {"type", "profile", "key", "foreach", "when", "rules", "note", "passthrough", "terminology"}
)


def load_mapping_set(directory: Path, *, fast_validation: bool = True) -> MappingSet:
    """Load and compile the mapping set in ``directory``.

    Raises :class:`~bcconnect.errors.MappingDefinitionError` listing every problem found in every file
    (file, line, field, what was expected) — never only the first.
    """
    problems: list[DefinitionProblem] = []
    set_path = directory / SET_FILE
    header = load_yaml(set_path, problems) if set_path.is_file() else None
    if header is None:
        problems.append(DefinitionProblem(str(set_path), None, "(file)", "expected a mapping-set.yaml here"))
        raise MappingDefinitionError(problems)
    probe = Compiler(str(set_path), "json", problems, {}, lambda _r: True)
    set_id, version, fmt = _set_header(header, probe)
    templates: dict[str, Template] = {}
    for rel in _as_list(header.get("templates")):
        _load_templates(directory / str(rel), templates, problems)
    maps = load_concept_maps(directory / str(header.get("concept_maps", "conceptmaps")), problems)
    terminology = ConceptMaps(maps)
    security = SecurityRules()
    if header.get("security"):
        security = load_security_rules(directory / str(header["security"]), problems)
    files: list[MappingFile] = []
    seen_ids: dict[str, str] = {}
    seen_types: dict[str, str] = {}
    # templates and security rules may live beside the mapping files; they are not mapping files
    not_mappings = {(directory / str(rel)).resolve() for rel in _as_list(header.get("templates"))}
    if header.get("security"):
        not_mappings.add((directory / str(header["security"])).resolve())
    for path in sorted(directory.glob("*.yaml")):
        if path.name == SET_FILE or path.resolve() in not_mappings:
            continue
        mfile = _load_file(path, fmt, templates, terminology, problems)
        if mfile is None:
            continue
        for rtype in mfile.record_types:
            if rtype in seen_types:
                problems.append(DefinitionProblem(str(path), None, "source.type",
                                f"record type {rtype!r} is already mapped by {seen_types[rtype]}"))  # fmt: skip
            seen_types[rtype] = path.name
        if mfile.id in seen_ids:
            problems.append(
                DefinitionProblem(str(path), None, "id", f"id {mfile.id!r} is also used by {seen_ids[mfile.id]}")
            )
        seen_ids[mfile.id] = path.name
        files.append(mfile)
    if problems:
        raise MappingDefinitionError(problems)
    return MappingSet(
        id=set_id,
        version=version,
        source_format=fmt,
        directory=directory,
        files=tuple(files),
        terminology=terminology,
        security=security,
        validator=Validator(fast=fast_validation),
        templates=templates,
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _set_header(header: Any, probe: Compiler) -> tuple[str, str, str]:
    if not isinstance(header, dict):
        probe.problem(header, "(file)", "expected a mapping with id, version, format")
        return "", "", "json"
    set_id = str(header.get("id") or "")
    version = str(header.get("version") or "")
    fmt = str(header.get("format") or "")
    if not set_id:
        probe.problem(header, "id", "expected the mapping set id", "id")
    if not _VERSION.fullmatch(version):
        probe.problem(header, "version", "expected a semantic version such as 1.0.0", "version")
    if fmt not in FORMATS:
        probe.problem(header, "format", f"expected one of {list(FORMATS)}", "format")
        fmt = "json"
    return set_id, version, fmt


def _load_templates(path: Path, templates: dict[str, Template], problems: list[DefinitionProblem]) -> None:
    doc = load_yaml(path, problems)
    if doc is None:
        return
    compiler = Compiler(str(path), "json", problems, templates, lambda _r: True)
    if not isinstance(doc, dict) or not isinstance(doc.get("templates"), dict):
        compiler.problem(doc, "templates", "expected a mapping with a 'templates' mapping of name → template")
        return
    for name, node in doc["templates"].items():
        compile_template(str(name), node, compiler)


def _load_file(
    path: Path, fmt: str, templates: dict[str, Template], terminology: ConceptMaps, problems: list[DefinitionProblem]
) -> MappingFile | None:
    doc = load_yaml(path, problems)
    if doc is None:
        return None

    def known_map(ref: str) -> bool:
        if terminology.get(ref) is None:
            return False
        terminology.used.add(ref)
        return True

    c = Compiler(str(path), fmt, problems, templates, known_map)
    if not isinstance(doc, LocDict):
        c.problem(doc, "(file)", "expected a mapping file with id, version, source, resources")
        return None
    before = len(problems)
    for key in doc:
        if key not in _FILE_KEYS:
            c.problem(doc, key, f"unknown key; expected one of {sorted(_FILE_KEYS)}", key)
    file_id = doc.get("id")
    if not isinstance(file_id, str) or not file_id:
        c.problem(doc, "id", "expected the mapping's id (a string)", "id")
    if not _VERSION.fullmatch(str(doc.get("version", ""))):
        c.problem(doc, "version", "expected a semantic version such as 1.0.0", "version")
    source = doc.get("source")
    record_types: list[str] = []
    source_profile = None
    if not isinstance(source, dict) or "type" not in source:
        c.problem(doc, "source", "expected {type: <record type or list>, profile: <source profile>}", "source")
    else:
        record_types = [str(t) for t in _as_list(source["type"])]
        source_profile = source.get("profile")
        if not source_profile:
            c.problem(source, "source.profile", "expected the source profile (what this file reads)")
    specs = _resources(doc.get("resources"), c)
    if len(problems) > before:
        return None
    return MappingFile(str(file_id), str(doc["version"]), path, tuple(record_types), source_profile, specs)


def _resources(node: Any, c: Compiler) -> tuple[ResourceSpec, ...]:
    if not isinstance(node, list) or not node:
        c.problem(node, "resources", "expected a non-empty list of resources to produce")
        return ()
    out: list[ResourceSpec] = []
    for i, res in enumerate(node):
        field = f"resources[{i}]"
        if not isinstance(res, dict):
            c.problem(res, field, "expected {type, profile, rules}")
            continue
        for key in res:
            if key not in _RESOURCE_KEYS:
                c.problem(res, f"{field}.{key}", f"unknown key; expected one of {sorted(_RESOURCE_KEYS)}", key)
        rtype = str(res.get("type", ""))
        if _model(rtype) is None:
            c.problem(res, f"{field}.type", f"expected a FHIR R4 resource type, got {rtype!r}", "type")
        profile = str(res.get("profile", ""))
        if not profile.startswith(profile_for(rtype)):
            c.problem(res, f"{field}.profile", f"expected the UK Core profile {profile_for(rtype)}…", "profile")
        key = c.format(res, "key", field) if "key" in res else None
        foreach = None
        if "foreach" in res:
            try:
                foreach = compile_reader(res["foreach"], c.source_format)
            except ValueError as exc:
                c.problem(res, f"{field}.foreach", str(exc), "foreach")
        when = c.condition(res["when"], f"{field}.when") if "when" in res else None
        rules = c.rules(res.get("rules"), f"{field}.rules") if "rules" in res or not res.get("passthrough") else ()
        passthrough = res.get("passthrough", False)
        if not isinstance(passthrough, bool):
            c.problem(res, f"{field}.passthrough", "expected true or false", "passthrough")
        elif passthrough and c.source_format != "fhir":
            c.problem(res, f"{field}.passthrough", "only a fhir mapping set can pass elements through", "passthrough")
        terminology: list[SourcePath] = []
        for j, text in enumerate(res.get("terminology") or ()):
            try:
                terminology.append(compile_source(str(text)))
            except ValueError as exc:
                c.problem(res, f"{field}.terminology[{j}]", str(exc), "terminology")
        spec = ResourceSpec(rtype, profile, key, foreach, when, rules, getattr(res, "line", 0))
        spec.passthrough = passthrough is True
        spec.terminology = tuple(terminology)
        out.append(spec)
    return tuple(out)
