"""Sensitivity labels: ``meta.security`` added to produced resources by configurable rules.

The shared record excludes sensitive records by default (sexual health, fertility, gender reassignment …) and
the read path filters on ``meta.security``. Rules live in a YAML file (``security:`` in the set file) and
test the *produced* FHIR resource, so one rule file serves every dialect::

    rules:
      - name: sexual-health-clinic
        resource: Encounter
        when: {path: serviceType.coding.code, in: ["GUM", "361"]}
        label: {system: http://terminology.hl7.org/CodeSystem/v3-ActCode, code: SEX}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcconnect.errors import DefinitionProblem
from bcconnect.mapping._compile import Compiler
from bcconnect.mapping._rules import Predicate, RunEnv
from bcconnect.mapping._yaml import load_yaml
from bcconnect.mapping.terminology import ConceptMaps


@dataclass(frozen=True, slots=True)
class SecurityRule:
    """One labelling rule: resources of ``resource`` type matching ``when`` get ``label``."""

    name: str
    resource: str | None
    when: Predicate
    label: dict[str, str]


@dataclass(frozen=True, slots=True)
class SecurityRules:
    """The labelling rules of a mapping set."""

    rules: tuple[SecurityRule, ...] = ()

    def apply(self, resource: dict[str, Any], terminology: ConceptMaps) -> list[SecurityRule]:
        """Add every matching rule's label to ``resource['meta']['security']`` (no duplicates).

        Returns the rules that matched (``explain`` shows them).
        """
        matched: list[SecurityRule] = []
        if not self.rules:
            return matched
        env = RunEnv(resource, {}, terminology)
        rtype = resource.get("resourceType")
        for rule in self.rules:
            if rule.resource not in (None, rtype) or not rule.when(env, resource):
                continue
            matched.append(rule)
            labels: list[dict[str, Any]] = resource.setdefault("meta", {}).setdefault("security", [])
            if not any(
                lab.get("system") == rule.label["system"] and lab.get("code") == rule.label["code"] for lab in labels
            ):
                labels.append(dict(rule.label))
        return matched


def load_security_rules(path: Path, problems: list[DefinitionProblem]) -> SecurityRules:
    """Load a labelling rules file; every problem is appended to ``problems``."""
    doc = load_yaml(path, problems)
    if doc is None:
        return SecurityRules()
    compiler = Compiler(str(path), "json", problems, {}, lambda _ref: True)
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        compiler.problem(doc, "rules", "expected a mapping with a 'rules' list")
        return SecurityRules()
    out: list[SecurityRule] = []
    for i, node in enumerate(doc["rules"]):
        field = f"rules[{i}]"
        if not isinstance(node, dict):
            compiler.problem(node, field, "expected a rule with name, resource, when, label")
            continue
        label = node.get("label")
        if not isinstance(label, dict) or not label.get("system") or not label.get("code"):
            compiler.problem(node, f"{field}.label", "expected {system: …, code: …[, display: …]}", "label")
            continue
        when = compiler.condition(node.get("when"), f"{field}.when")
        if when is None:
            continue
        resource = node.get("resource")
        out.append(SecurityRule(str(node.get("name", field)), resource, when, {k: str(v) for k, v in label.items()}))
    return SecurityRules(tuple(out))
