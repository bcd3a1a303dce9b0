"""Compiled rules and how they run: each rule reads values, converts them and writes one target path.

A rule is data compiled once at load (paths pre-parsed, functions looked up), so mapping a record is a walk
over small objects — no parsing, no string building. Output is built as Python data, never as JSON text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from bcconnect.errors import MappingError
from bcconnect.fhir.ids import reference
from bcconnect.mapping._paths import TargetPath
from bcconnect.mapping._sources import Reader
from bcconnect.mapping.terminology import ConceptMaps, TerminologyError

UNSET: Final[Any] = object()

Predicate = Callable[["RunEnv", Any], bool]


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One written value, for ``mappings explain``: which rule wrote it, from which source value."""

    target: str
    rule: str
    source: str | None
    source_value: Any
    value: Any


@dataclass(slots=True)
class RunEnv:
    """The state of mapping one record."""

    root: Any
    vars: dict[str, str]
    terminology: ConceptMaps
    trace: list[TraceEntry] | None = None
    cache: dict[str, Any] = field(default_factory=dict)  # per-record memo for readers (HL7 segment index)


@dataclass(frozen=True, slots=True)
class Format:
    """A string with ``{path}`` placeholders; yields nothing when any placeholder has no value."""

    text: str
    parts: tuple[str | Reader, ...]

    def render(self, env: RunEnv, scope: Any) -> str | None:
        """The string with every placeholder filled by its first value."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            values = part.read(env, scope)
            if not values or values[0] in ("", None):
                return None
            out.append(str(values[0]))
        return "".join(out)


@dataclass(frozen=True, slots=True)
class FnCall:
    """One registered function with its arguments from the rule."""

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]


@dataclass(slots=True, eq=False)
class Template:
    """A reusable datatype builder: named parameters in, one object out.

    Templates are macros: each use is compiled into plain nested rules with the parameters bound to the
    caller's readers (see ``Compiler``), so a template costs nothing at run time.
    """

    name: str
    params: tuple[str, ...]
    node: Any  # the YAML rules, compiled again at every use
    file: str
    line: int
    ok: bool = True


@dataclass(frozen=True, slots=True)
class ConstReader:
    """A template parameter bound to a constant."""

    text: str
    value: Any

    def read(self, env: RunEnv, scope: Any) -> list[Any]:
        """The constant (a fresh copy of a container)."""
        return [fresh(self.value)]


@dataclass(frozen=True, slots=True)
class FormatReader:
    """A template parameter bound to a ``{path}`` format string."""

    fmt: Format

    @property
    def text(self) -> str:
        """The format as written."""
        return self.fmt.text

    def read(self, env: RunEnv, scope: Any) -> list[Any]:
        """The rendered string, or nothing when a placeholder has no value."""
        text = self.fmt.render(env, scope)
        return [text] if text is not None else []


@dataclass(frozen=True, slots=True)
class RuleReader:
    """A template parameter bound to a value rule ({from, fn, lookup, translate …})."""

    rule: Rule

    @property
    def text(self) -> str:
        """The rule's source path."""
        return self.rule.source.text if self.rule.source is not None else self.rule.rid

    def read(self, env: RunEnv, scope: Any) -> list[Any]:
        """The rule's converted values."""
        return self.rule._values(env, scope)[0]


@dataclass(slots=True, eq=False)
class Rule:
    """One compiled field rule (see the mapping file reference in mappings/README.md)."""

    rid: str
    target: TargetPath
    source: Reader | None = None
    const: Any = UNSET
    fmt: Format | None = None
    fns: tuple[FnCall, ...] = ()
    lookup: dict[str, Any] | None = None
    otherwise: Any = UNSET
    translate: str | None = None
    system: str | None = None
    display: Reader | None = None
    reference: str | None = None
    when: Predicate | None = None
    required: bool = False
    default: Any = UNSET
    each: Reader | None = None
    children: tuple[Rule, ...] = ()
    template_name: str | None = None  # the template this rule was expanded from (children hold its rules)
    source_system: str | None = None
    #: set by :meth:`seal`: a specialised runner for the common simple rules (no tracing), or None
    fast: Callable[[RunEnv, Any, dict[str, Any]], None] | None = None

    def seal(self) -> Rule:
        """Mark the rule compiled: choose a specialised runner for simple rules (copy, constant, convert, look up).

        Most rules are one of these; running them through a closure made once avoids re-deciding per record
        which optional steps apply. Anything else (translate, reference, nested, defaults) takes :meth:`apply`.
        """
        simple = (
            self.each is None
            and not self.children
            and self.translate is None
            and self.reference is None
            and self.default is UNSET
            and not self.required
            and self.fmt is None
        )
        if simple and self.source is not None and not (self.fns and self.lookup is not None):
            self.fast = _copy_runner(self) if not self.fns and self.lookup is None else _convert_runner(self)
        elif simple and self.const is not UNSET and not self.fns and self.lookup is None:
            self.fast = _const_runner(self)
        return self

    def fail(self, message: str, value: Any = UNSET, exc: type[MappingError] = MappingError) -> MappingError:
        """A MappingError naming this rule, its source path and value, and its target path."""
        src = self.source.text if self.source is not None else (self.fmt.text if self.fmt else None)
        shown = "" if value is UNSET else f", value {_preview(value)}"
        return exc(f"rule {self.rid}: {message} (source {src or '-'}{shown}; target {self.target.text})")

    # --- running -----------------------------------------------------------------------------------------
    def apply(self, env: RunEnv, scope: Any, out: dict[str, Any], prefix: str = "") -> None:
        """Run this rule in ``scope`` and write its result into ``out``."""
        if self.fast is not None and env.trace is None:
            if self.when is None or self.when(env, scope):
                self.fast(env, scope, out)
            return
        if self.when is not None and not self.when(env, scope):
            return
        if self.each is not None:
            nested = bool(self.children)
            for item in self.each.read(env, scope):
                if nested:
                    built = self._build(env, item, out, prefix)
                    if built:
                        self._write(env, out, built, prefix, None)
                    continue
                values, raw = self._values(env, item)  # one value per item (e.g. a reference per OBX)
                if values:
                    self._write(env, out, values[0], prefix, raw)
            return
        if self.children:
            built = self._build(env, scope, out, prefix)
            if built:
                self._write(env, out, built, prefix, None)
            elif self.required:
                raise self.fail("produced nothing but is required")
            return
        values, raw = self._values(env, scope)
        if not values:
            if self.default is not UNSET:
                values = [fresh(self.default)]
            elif self.required:
                raise self.fail("no value but the rule is required", raw if raw else UNSET)
            else:
                return
        self._write(env, out, values if self.target.many else values[0], prefix, raw)

    def _child_prefix(self, out: dict[str, Any], prefix: str) -> str:
        name = self.target.steps[-1][0]
        existing = _at(out, self.target)
        index = len(existing) if isinstance(existing, list) else 0
        head = self.target.text.rsplit("[", 1)[0] if self.target.steps[-1][1] is not None else self.target.text
        return f"{prefix}{head}[{index}]." if self.target.steps[-1][1] is not None else f"{prefix}{name}."

    def _build(self, env: RunEnv, scope: Any, out: dict[str, Any], prefix: str) -> dict[str, Any]:
        inner = self._child_prefix(out, prefix) if env.trace is not None else ""
        built: dict[str, Any] = {}
        for rule in self.children:
            rule.apply(env, scope, built, inner)
        return built

    def _values(self, env: RunEnv, scope: Any) -> tuple[list[Any], list[Any]]:
        if self.const is not UNSET:
            const = self.const
            raw: list[Any] = [fresh(const) if isinstance(const, dict | list) else const]
        elif self.fmt is not None:
            text = self.fmt.render(env, scope)
            raw = [text] if text is not None else []
        elif self.source is not None:
            # an empty string is never a FHIR value; vendor JSON and HL7 use it for "not known"
            raw = [v for v in self.source.read(env, scope) if v != ""]
        else:
            raw = []
        values = raw
        for call in self.fns:
            converted: list[Any] = []
            for value in values:
                try:
                    result = call.fn(value, *call.args)
                except (ValueError, TypeError) as exc:
                    raise self.fail(f"function {call.name} failed: {exc}", value) from exc
                if isinstance(result, list):
                    converted.extend(result)
                elif result is not None:
                    converted.append(result)
            values = converted
        if self.lookup is not None:
            values = [self._look_up(v) for v in values]
            values = [v for v in values if v is not None]
        if self.translate is not None:
            values = [self._translate(env, scope, v) for v in values]
        if self.reference is not None:
            values = [self._reference(env, v) for v in values]
        return values, raw

    def _look_up(self, value: Any) -> Any:
        assert self.lookup is not None
        key = str(value)
        if key in self.lookup:
            return fresh(self.lookup[key])
        if self.otherwise is not UNSET:
            return fresh(self.otherwise)
        raise self.fail(f"no entry for {_preview(key)} in the lookup table and no 'otherwise'", value)

    def _translate(self, env: RunEnv, scope: Any, value: Any) -> dict[str, Any]:
        assert self.translate is not None
        if isinstance(value, dict) and "coding" in value:
            concept = value
        elif isinstance(value, dict):
            concept = {"coding": [value]}
        else:
            coding = {"system": self.system, "code": str(value)}
            if self.display is not None:
                shown = self.display.read(env, scope)
                if shown:
                    coding["display"] = str(shown[0])
            concept = {"coding": [coding]}
        try:
            return env.terminology.translate(self.translate, concept)
        except TerminologyError as exc:
            raise self.fail(str(exc), value, TerminologyError) from exc

    def _reference(self, env: RunEnv, value: Any) -> Any:
        system = self.source_system or env.vars["source_system"]
        if isinstance(value, list):
            return [self._reference(env, item) if isinstance(item, dict | list) else item for item in value]
        if isinstance(value, dict) and "reference" not in value:
            if self.reference != "any":
                return value  # e.g. a reference by identifier only (an ODS code): nothing to re-key
            # 'any' re-keys references nested anywhere in a copied element (participant.individual …)
            return {k: self._reference(env, v) if isinstance(v, dict | list) else v for k, v in value.items()}
        if isinstance(value, dict):
            literal = value.get("reference")
            if not isinstance(literal, str) or literal.count("/") != 1 or "://" in literal:
                return value  # contained, absolute or logical references are kept as sent
            rtype = literal.split("/", 1)[0]
            if self.reference not in ("any", rtype):
                raise self.fail(f"expected a reference to {self.reference}", literal)
            out = dict(value)
            out["reference"] = reference(system, rtype, literal)
            return out
        assert self.reference is not None
        return {"reference": reference(system, self.reference, str(value))}

    def _write(self, env: RunEnv, out: dict[str, Any], value: Any, prefix: str, raw: Any) -> None:
        if env.trace is not None and raw is not None:
            src = self.source.text if self.source is not None else (self.fmt.text if self.fmt else None)
            shown = raw[0] if isinstance(raw, list) and len(raw) == 1 else raw
            if isinstance(raw, list) and not raw:
                src, shown = "(default)", self.default
            env.trace.append(TraceEntry(prefix + self.target.text, self.rid, src, shown, value))
        self.target.assign(out, value)


def _writer(rule: Rule) -> Callable[[dict[str, Any], Any], None]:
    target = rule.target
    if len(target.steps) == 1 and target.steps[0][1] is None:
        name = target.steps[0][0]

        def put(out: dict[str, Any], value: Any) -> None:
            out[name] = value

        return put
    return target.assign


def _copy_runner(rule: Rule) -> Callable[[RunEnv, Any, dict[str, Any]], None]:
    read, put, many = rule.source.read if rule.source else _nothing, _writer(rule), rule.target.many

    def run(env: RunEnv, scope: Any, out: dict[str, Any]) -> None:
        found = read(env, scope)
        if found:
            values = [v for v in found if v != ""]
            if values:
                put(out, values if many else values[0])

    return run


def _convert_runner(rule: Rule) -> Callable[[RunEnv, Any, dict[str, Any]], None]:
    """from + functions, or from + lookup: the general value path minus the steps this rule lacks."""
    read, put, many = rule.source.read if rule.source else _nothing, _writer(rule), rule.target.many
    values_of = rule._values

    def run(env: RunEnv, scope: Any, out: dict[str, Any]) -> None:
        if read(env, scope):  # most optional fields are absent: skip the conversion machinery
            values = values_of(env, scope)[0]
            if values:
                put(out, values if many else values[0])

    return run


def _const_runner(rule: Rule) -> Callable[[RunEnv, Any, dict[str, Any]], None]:
    put, const = _writer(rule), rule.const
    value = [const] if rule.target.many and not isinstance(const, list) else const
    if isinstance(value, dict | list):

        def run_container(env: RunEnv, scope: Any, out: dict[str, Any]) -> None:
            put(out, fresh(value))

        return run_container

    def run(env: RunEnv, scope: Any, out: dict[str, Any]) -> None:
        put(out, value)

    return run


def _nothing(env: RunEnv, scope: Any) -> list[Any]:
    return []


def fresh(value: Any) -> Any:
    """A copy of a constant container, so later rules writing inside it never change the rule itself."""
    if isinstance(value, dict):
        return {k: fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fresh(v) for v in value]
    return value


def _at(out: dict[str, Any], target: TargetPath) -> Any:
    cur: Any = out
    for name, _ in target.steps:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(name)
    return cur


def _preview(value: Any) -> str:
    # Errors go to quarantine, which holds the record anyway; keep messages short and single-line.
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
