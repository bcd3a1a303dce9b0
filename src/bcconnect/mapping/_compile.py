"""Compile rule mappings from a YAML file into :class:`Rule` objects, collecting every problem on the way.

Nothing here raises on a bad rule: each problem (file, line, field, what was expected) is appended to the
list and compilation carries on, so one run of ``load_mapping_set`` reports every mistake in every file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from bcconnect.errors import DefinitionProblem
from bcconnect.mapping._paths import PathSyntaxError, TargetPath, compile_target
from bcconnect.mapping._rules import (
    UNSET,
    ConstReader,
    FnCall,
    Format,
    FormatReader,
    Predicate,
    Rule,
    RuleReader,
    RunEnv,
    Template,
)
from bcconnect.mapping._sources import EmptyReader, Reader, compile_reader
from bcconnect.mapping._yaml import LocDict
from bcconnect.mapping.functions import REGISTRY

RULE_KEYS: Final = frozenset(
    {
        "name", "note", "target", "from", "const", "format", "fn", "lookup", "otherwise", "translate",
        "system", "display", "reference", "when", "required", "default", "each", "rules", "template", "with",
    }
)  # fmt: skip
_PLACEHOLDER: Final = re.compile(r"\{([^{}]+)\}")
_SOURCES: Final = ("from", "const", "format")


@dataclass(slots=True)
class Compiler:
    """Compiles the rules of one file; ``problems`` collects what is wrong."""

    file: str
    source_format: str
    problems: list[DefinitionProblem]
    templates: dict[str, Template]
    concept_maps: Callable[[str], bool]
    #: inside a template: parameter name → the caller's reader (None outside templates)
    bindings: dict[str, Reader] | None = None
    #: prefixed to rule ids of expanded template rules ("gp (patient.yaml:40) → template ods_organization: ")
    rid_prefix: str = ""

    def problem(self, node: Any, field: str, message: str, key: str | None = None) -> None:
        """Record a problem at ``node`` (or at ``key`` inside it)."""
        line = node.line_of(key) if key is not None and hasattr(node, "line_of") else getattr(node, "line", None)
        self.problems.append(DefinitionProblem(self.file, line, field, message))

    def compile_path(self, text: Any, fmt: str | None = None) -> Reader:
        """A reader for ``text``; inside a template, parameter names resolve to the caller's readers."""
        if self.bindings is not None and not (isinstance(text, str) and text.strip().startswith("$")):
            name = str(text).strip()
            if name in self.bindings:
                return self.bindings[name]
            raise PathSyntaxError(
                f"a template rule reads its parameters ({', '.join(sorted(self.bindings))}) or $variables, got {name!r}"
            )
        return compile_reader(text, fmt or self.source_format)

    def reader(self, node: Any, key: str, field: str, fmt: str | None = None) -> Reader | None:
        """A compiled source path from ``node[key]``, or None after recording the problem."""
        try:
            return self.compile_path(node[key], fmt)
        except PathSyntaxError as exc:
            self.problem(node, f"{field}.{key}", str(exc), key)
            return None

    def format(self, node: Any, key: str, field: str, fmt: str | None = None) -> Format | None:
        """A compiled ``{path}`` format string from ``node[key]``."""
        text = node[key]
        if not isinstance(text, str):
            self.problem(node, f"{field}.{key}", "expected a string with {path} placeholders", key)
            return None
        parts: list[str | Reader] = []
        pos = 0
        for match in _PLACEHOLDER.finditer(text):
            parts.append(text[pos : match.start()])
            try:
                parts.append(self.compile_path(match.group(1), fmt))
            except PathSyntaxError as exc:
                self.problem(node, f"{field}.{key}", f"placeholder {{{match.group(1)}}}: {exc}", key)
                return None
            pos = match.end()
        parts.append(text[pos:])
        return Format(text, tuple(p for p in parts if p != ""))

    def target(self, node: Any, field: str) -> TargetPath | None:
        """The compiled ``target`` of a rule."""
        try:
            return compile_target(node.get("target"))
        except PathSyntaxError as exc:
            self.problem(node, f"{field}.target", str(exc), "target")
            return None

    # --- conditions ----------------------------------------------------------------------------------------
    def condition(self, node: Any, field: str, fmt: str | None = None) -> Predicate | None:
        """Compile ``when``: {path, equals|in|exists|matches} or {all|any: [...]} or {not: {...}} or a path."""
        if isinstance(node, str):
            node = {"path": node, "exists": True}
        if not isinstance(node, dict):
            self.problem(node, field, "expected a condition mapping such as {path: status, equals: active}")
            return None
        for combinator in ("all", "any"):
            if combinator in node:
                parts = [self.condition(c, f"{field}.{combinator}[{i}]", fmt) for i, c in enumerate(node[combinator])]
                if any(p is None for p in parts):
                    return None
                preds = [p for p in parts if p is not None]
                if combinator == "all":
                    return lambda env, scope: all(p(env, scope) for p in preds)
                return lambda env, scope: any(p(env, scope) for p in preds)
        if "not" in node:
            inner = self.condition(node["not"], f"{field}.not", fmt)
            return None if inner is None else (lambda env, scope: not inner(env, scope))
        if "path" not in node:
            self.problem(node, field, "expected 'path' with equals/in/exists/matches, or all/any/not")
            return None
        reader = self.reader(node, "path", field, fmt)
        if reader is None:
            return None
        return self._test(node, field, reader)

    def _test(self, node: Any, field: str, reader: Reader) -> Predicate | None:
        read = reader.read
        if "equals" in node:
            want = str(node["equals"])
            return lambda env, scope: any(str(v) == want for v in read(env, scope))
        if "in" in node:
            if not isinstance(node["in"], list):
                self.problem(node, f"{field}.in", "expected a list of values", "in")
                return None
            wanted = frozenset(str(v) for v in node["in"])
            return lambda env, scope: any(str(v) in wanted for v in read(env, scope))
        if "matches" in node:
            try:
                pattern = re.compile(str(node["matches"]))
            except re.error as exc:
                self.problem(node, f"{field}.matches", f"not a regular expression: {exc}", "matches")
                return None
            return lambda env, scope: any(pattern.fullmatch(str(v)) for v in read(env, scope))
        exists = node.get("exists", True)
        if not isinstance(exists, bool):
            self.problem(node, f"{field}.exists", "expected true or false", "exists")
            return None
        return lambda env, scope: any(v not in ("", None) for v in read(env, scope)) is exists

    # --- rules ---------------------------------------------------------------------------------------------
    def rules(self, node: Any, field: str, fmt: str | None = None) -> tuple[Rule, ...]:
        """Compile a list of rules (problems recorded, bad rules left out)."""
        if not isinstance(node, list):
            self.problem(node, field, "expected a list of rules")
            return ()
        out: list[Rule] = []
        for i, item in enumerate(node):
            rule = self.rule(item, f"{field}[{i}]", fmt)
            if rule is not None:
                out.append(rule)
        return tuple(out)

    def rule(self, node: Any, field: str, fmt: str | None = None) -> Rule | None:
        """Compile one rule; None (with problems recorded) when it is wrong."""
        if not isinstance(node, dict):
            self.problem(node, field, "expected a rule mapping with a 'target'")
            return None
        before = len(self.problems)
        name = node.get("name")
        line = getattr(node, "line", 0)
        rid = self.rid_prefix + (f"{name} ({self.file_name}:{line})" if name else f"{self.file_name}:{line}")
        field = f"{field}({name})" if name else field
        for key in node:
            if key not in RULE_KEYS:
                self.problem(node, f"{field}.{key}", f"unknown rule key; expected one of {sorted(RULE_KEYS)}", key)
        target = self.target(node, field)
        rule = Rule(rid=rid, target=target or compile_target("invalid"))
        present = [k for k in _SOURCES if k in node]
        if len(present) > 1:
            self.problem(node, field, f"expected at most one of from/const/format, got {present}")
        if "from" in node:
            rule.source = self.reader(node, "from", field, fmt)
        if "const" in node:
            rule.const = node["const"]
        if "format" in node:
            rule.fmt = self.format(node, "format", field, fmt)
        if "each" in node:
            rule.each = self.reader(node, "each", field, fmt)
            if not ("rules" in node or "template" in node or present):
                self.problem(
                    node, f"{field}.each", "'each' needs rules, a template or from/const/format per item", "each"
                )
        nested = "rules" in node or "template" in node
        if nested and present:
            self.problem(node, field, "a rule builds from 'rules'/'template' or reads from/const/format, not both")
        if not nested and not present:
            self.problem(node, field, "expected one of from, const, format, rules, template")
        if "rules" in node:
            rule.children = self.rules(node["rules"], f"{field}.rules", fmt)
        if "template" in node:
            self._template_use(node, field, rule, fmt)
        if "when" in node:
            rule.when = self.condition(node["when"], f"{field}.when", fmt)
        self._conversions(node, field, rule, fmt)
        rule.required = bool(node.get("required", False))
        if "default" in node:
            rule.default = node["default"]
        return rule.seal() if len(self.problems) == before and target is not None else None

    @property
    def file_name(self) -> str:
        """The file's base name, used in rule ids."""
        return self.file.rsplit("/", 1)[-1]

    def _template_use(self, node: Any, field: str, rule: Rule, fmt: str | None) -> None:
        """Expand a template use into nested rules whose parameters read through the caller's readers."""
        template = self.templates.get(str(node["template"]))
        if template is None:
            self.problem(node, f"{field}.template", f"unknown template {node['template']!r}; "
                         f"expected one of {sorted(self.templates)}", "template")  # fmt: skip
            return
        with_ = node.get("with") or {}
        if not isinstance(with_, dict):
            self.problem(node, f"{field}.with", "expected a mapping of template parameter → source path", "with")
            return
        bindings: dict[str, Reader] = {p: EmptyReader(p) for p in template.params}
        for key, spec in with_.items():
            bound = self._binding(template, with_, key, spec, field, fmt)
            if bound is not None:
                bindings[key] = bound
        rule.template_name = template.name
        if not template.ok:
            return  # its own problems are reported once, where it is defined
        expander = Compiler(
            template.file, "json", self.problems, self.templates, self.concept_maps,
            bindings=bindings, rid_prefix=f"{rule.rid} → template {template.name}: ",
        )  # fmt: skip
        rule.children = expander.rules(template.node, f"templates.{template.name}.rules")

    def _binding(self, template: Template, with_: Any, key: str, spec: Any, field: str, fmt: str | None) -> Any:
        if key not in template.params:
            self.problem(with_, f"{field}.with.{key}",
                         f"template {template.name} has no parameter {key!r}; expected {list(template.params)}",
                         key)  # fmt: skip
            return None
        if isinstance(spec, dict) and "const" in spec:
            return ConstReader(f"const {spec['const']!r}", spec["const"])
        if isinstance(spec, dict):
            # a full value rule ({from, fn, lookup, translate …}) computes the parameter
            located = LocDict({**spec, "target": "value"})
            located.line = getattr(spec, "line", getattr(with_, "line", 0))
            located.key_lines = dict(getattr(spec, "key_lines", {}))
            param_rule = self.rule(located, f"{field}.with.{key}", fmt)
            return RuleReader(param_rule) if param_rule is not None else None
        if isinstance(spec, str) and "{" in spec:
            fmt_spec = self.format(with_, key, f"{field}.with", fmt)
            return FormatReader(fmt_spec) if fmt_spec is not None else None
        return self.reader(with_, key, f"{field}.with", fmt)

    def _conversions(self, node: Any, field: str, rule: Rule, fmt: str | None) -> None:
        fns = node.get("fn")
        if fns is not None:
            calls: list[FnCall] = []
            for spec in fns if isinstance(fns, list) else [fns]:
                fname, args = next(iter(spec.items())) if isinstance(spec, dict) and len(spec) == 1 else (spec, ())
                args = tuple(args) if isinstance(args, list) else (args,) if args != () else ()
                if not isinstance(fname, str) or fname not in REGISTRY:
                    self.problem(node, f"{field}.fn", f"unknown function {fname!r}; expected one of "
                                 f"{sorted(REGISTRY)}", "fn")  # fmt: skip
                    continue
                calls.append(FnCall(fname, REGISTRY[fname], args))
            rule.fns = tuple(calls)
        if "lookup" in node:
            table = node["lookup"]
            if not isinstance(table, dict):
                self.problem(node, f"{field}.lookup", "expected a mapping of source value → target value", "lookup")
            else:
                rule.lookup = {str(k): v for k, v in table.items()}
            if "otherwise" in node:
                rule.otherwise = node["otherwise"]
        if "translate" in node:
            ref = str(node["translate"])
            if not self.concept_maps(ref):
                self.problem(node, f"{field}.translate", f"no ConceptMap with id or url {ref!r}", "translate")
            rule.translate = ref
            rule.system = node.get("system")
            if "display" in node:
                rule.display = self.reader(node, "display", field, fmt)
        if "reference" in node:
            rtype = node["reference"]
            if not isinstance(rtype, str) or not (rtype == "any" or rtype[:1].isupper()):
                self.problem(node, f"{field}.reference", "expected a resource type (Patient) or 'any'", "reference")
            else:
                rule.reference = rtype


def compile_template(name: str, node: Any, compiler: Compiler) -> Template | None:
    """Check one template (``params`` and ``rules`` reading only those names) and keep it for expansion."""
    field = f"templates.{name}"
    if not isinstance(node, dict):
        compiler.problem(node, field, "expected a mapping with 'params' and 'rules'")
        return None
    params = node.get("params")
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        compiler.problem(node, f"{field}.params", "expected a list of parameter names", "params")
        params = []
    template = Template(name, tuple(params), node.get("rules"), compiler.file, getattr(node, "line", 0))
    before = len(compiler.problems)
    checker = Compiler(
        compiler.file, "json", compiler.problems, compiler.templates, compiler.concept_maps,
        bindings={p: EmptyReader(p) for p in params},
    )  # fmt: skip
    checker.rules(template.node, f"{field}.rules")
    template.ok = len(compiler.problems) == before
    compiler.templates[name] = template  # after the check, so a template cannot call itself
    return template


def run_rules(rules: tuple[Rule, ...], env: RunEnv, scope: Any, out: dict[str, Any]) -> None:
    """Apply ``rules`` in order to build ``out``."""
    for rule in rules:
        rule.apply(env, scope, out)


_ = UNSET  # re-exported for the loader's convenience
