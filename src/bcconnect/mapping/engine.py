"""A loaded mapping set: turns one raw record into validated FHIR R4 UK Core resources.

Every resource gets a deterministic id (``uuid5`` over source system, type and key, see
:mod:`bcconnect.fhir.ids`), ``meta.profile`` (UK Core), ``meta.source`` (``<source_system>/<source_key>``),
``meta.tag`` with the trust's ODS code and the mapping set ``id|version`` (the file id as display), and any
sensitivity labels the set's security rules give it. Then it is validated (R4 model + UK Core rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bcconnect.errors import MappingError, ValidationError
from bcconnect.fhir.constants import MAPPING_TAG_SYSTEM, SOURCE_ORG_TAG_SYSTEM
from bcconnect.fhir.ids import resource_id
from bcconnect.mapping._rules import Format, Predicate, Rule, RunEnv, Template, TraceEntry
from bcconnect.mapping._sources import Reader, VariableReader, parse_record
from bcconnect.mapping.security import SecurityRules
from bcconnect.mapping.terminology import ConceptMaps, UnmappedCode
from bcconnect.mapping.validation import Validator


@dataclass(frozen=True, slots=True)
class MappingContext:
    """Where a record came from: the trust, its system url, the record's key there, and when we got it."""

    ods_code: str
    source_system: str
    source_key: str
    received_at: str


@dataclass(frozen=True, slots=True)
class MappingResult:
    """The resources one record mapped to (validated), the file that mapped it, and a trace when asked."""

    resources: list[dict[str, Any]]
    mapping_file: str
    trace: list[list[TraceEntry]] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class ResourceSpec:
    """One resource a mapping file produces (possibly one per ``foreach`` item)."""

    resource_type: str
    profile: str
    key: Format | None
    foreach: Reader | None
    when: Predicate | None
    rules: tuple[Rule, ...]
    line: int


@dataclass(slots=True, eq=False)
class MappingFile:
    """One mapping file: header (id, version, source type(s) and profile) and the resources it produces."""

    id: str
    version: str
    path: Path
    record_types: tuple[str, ...]
    source_profile: str | None
    resources: tuple[ResourceSpec, ...]


def _context_vars(record_type: str, context: MappingContext) -> dict[str, str]:
    return {
        "ods": context.ods_code,
        "source_system": context.source_system,
        "source_key": context.source_key,
        "source_id": context.source_key.rsplit("/", 1)[-1],
        "received_at": context.received_at,
        "record_type": record_type,
    }


class MappingSet:
    """The mapping files of one dialect, their templates, ConceptMaps and security rules."""

    def __init__(
        self,
        *,
        id: str,
        version: str,
        source_format: str,
        directory: Path,
        files: tuple[MappingFile, ...],
        terminology: ConceptMaps,
        security: SecurityRules,
        validator: Validator,
        templates: dict[str, Template] | None = None,
    ) -> None:
        self.id = id
        self.version = version
        self.source_format = source_format
        self.directory = directory
        self.files = files
        self.terminology = terminology
        self.security = security
        self.validator = validator
        self.templates = templates or {}
        self._by_type = {rt: f for f in files for rt in f.record_types}

    def __repr__(self) -> str:
        return f"MappingSet({self.id!r}, version={self.version!r}, files={len(self.files)})"

    @property
    def record_types(self) -> tuple[str, ...]:
        """Every record type this set maps."""
        return tuple(sorted(self._by_type))

    def produces(self, record_type: str) -> frozenset[str]:
        """The resource types a record of ``record_type`` maps to (empty when the set does not map it)."""
        mfile = self._by_type.get(record_type)
        return frozenset(spec.resource_type for spec in mfile.resources) if mfile else frozenset()

    def file_for(self, record_type: str) -> MappingFile:
        """The mapping file for ``record_type``; MappingError when the set has none."""
        try:
            return self._by_type[record_type]
        except KeyError:
            raise MappingError(
                f"mapping set {self.id} has no mapping for record type {record_type!r}; "
                f"it maps {', '.join(self.record_types)}"
            ) from None

    def map(self, record_type: str, payload: bytes, *, context: MappingContext, explain: bool = False) -> MappingResult:
        """Map one raw record; raises ParseError, MappingError or ValidationError (all RecordErrors)."""
        mfile = self.file_for(record_type)
        root = parse_record(self.source_format, record_type, payload)
        env = RunEnv(root, _context_vars(record_type, context), self.terminology)
        tag = {"system": MAPPING_TAG_SYSTEM, "code": f"{self.id}|{self.version}", "display": mfile.id}
        ods_tag = {"system": SOURCE_ORG_TAG_SYSTEM, "code": context.ods_code}
        meta_source = f"{context.source_system}/{context.source_key}"
        resources: list[dict[str, Any]] = []
        traces: list[list[TraceEntry]] = []
        for spec in mfile.resources:
            items = spec.foreach.read(env, root) if spec.foreach is not None else [root]
            for item in items:
                if spec.when is not None and not spec.when(env, item):
                    continue
                key = context.source_key if spec.key is None else spec.key.render(env, item)
                if key is None:
                    raise MappingError(
                        f"{mfile.id}: the key {spec.key.text if spec.key else ''!r} of {spec.resource_type} "
                        "has no value in this record"
                    )
                env.trace = [] if explain else None
                out: dict[str, Any] = {
                    "resourceType": spec.resource_type,
                    "id": resource_id(context.source_system, spec.resource_type, key),
                    "meta": {},
                }
                for rule in spec.rules:
                    rule.apply(env, item, out)
                meta = out["meta"]
                meta["profile"] = [spec.profile]
                meta["source"] = meta_source
                meta["tag"] = [*(meta.get("tag") or ()), ods_tag, tag]
                matched = self.security.apply(out, self.terminology)
                resources.append(out)
                if env.trace is not None:
                    for label_rule in matched:
                        env.trace.append(
                            TraceEntry(
                                "meta.security[+]", f"security rule {label_rule.name}", None, None, label_rule.label
                            )
                        )
                    traces.append(env.trace)
        problems = [p for res in resources for p in self.validator.problems(res)]
        if problems:
            raise ValidationError(
                f"{mfile.id}: {len(problems)} problem(s) in the produced resources: {problems[0]}",
                details=problems,
            )
        return MappingResult(resources, mfile.id, traces)

    def resource_ids_for(self, record_type: str, source_key: str, context: MappingContext) -> list[tuple[str, str]]:
        """The (resource type, id) pairs a delete of this source record removes.

        Only resources whose key depends on the source key alone (not on the payload) can be named; a mapping
        whose key reads the payload (HL7 MRNs, ``foreach`` items) yields nothing here.
        """
        mfile = self.file_for(record_type)
        ctx = MappingContext(context.ods_code, context.source_system, source_key, context.received_at)
        env = RunEnv(None, _context_vars(record_type, ctx), self.terminology)
        out: list[tuple[str, str]] = []
        for spec in mfile.resources:
            if spec.foreach is not None:
                continue
            if spec.key is None:
                key: str | None = source_key
            elif all(isinstance(p, str | VariableReader) for p in spec.key.parts):
                key = spec.key.render(env, None)
            else:
                continue
            if key is not None:
                out.append((spec.resource_type, resource_id(ctx.source_system, spec.resource_type, key)))
        return out

    def stale_ids(self, record_type: str, context: MappingContext, result: MappingResult) -> list[tuple[str, str]]:
        """Resources this source record can produce but did not this time — the ingest deletes them.

        E.g. an RNA patient whose objection was withdrawn no longer produces its Consent; without this the
        old Consent would keep withholding the record.
        """
        produced = {(r["resourceType"], r["id"]) for r in result.resources}
        candidates = self.resource_ids_for(record_type, context.source_key, context)
        return [pair for pair in candidates if pair not in produced]

    def unmapped_report(self) -> list[UnmappedCode]:
        """Local codes no ConceptMap translated since load, most frequent first."""
        return self.terminology.unmapped_report()
