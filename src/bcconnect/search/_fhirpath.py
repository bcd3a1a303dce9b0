"""The small FHIRPath subset the R4 search-parameter expressions of our resource types use.

Supported: paths (``Patient.name.family``), top-level unions (``a | b``), parentheses, ``x as T`` and
``x.as(T)`` on choice elements, ``where(resolve() is T)`` on references, ``where(field='literal')`` and
``extension('url')``. Anything else raises :class:`UnsupportedExpression`, so a parameter we cannot index
is never advertised. Evaluation works on parsed FHIR JSON and yields :class:`Node` values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[().|=]))")


class UnsupportedExpression(ValueError):
    """The expression uses FHIRPath beyond the subset implemented here."""


class Node(NamedTuple):
    """One value an expression reached: the JSON value and, for a choice element, its type (``Quantity``).

    A named tuple rather than a dataclass: extraction creates hundreds of thousands of them during ingest.
    """

    value: object
    type_name: str | None = None


Step = Callable[[list[Node]], list[Node]]


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise UnsupportedExpression(f"cannot read {text[pos:]!r}")
        out.append(match.group(match.lastgroup or "op"))
        pos = match.end()
    return out


def _children(node: Node, name: str) -> Iterator[Node]:
    value = node.value
    if not isinstance(value, dict):
        return
    if name in value:
        found = value[name]
        for item in found if isinstance(found, list) else [found]:
            yield Node(item)
        return
    # a choice element: onset -> onsetDateTime / onsetPeriod …
    for key, found in value.items():
        if key.startswith(name) and len(key) > len(name) and key[len(name)].isupper():
            for item in found if isinstance(found, list) else [found]:
                yield Node(item, key[len(name) :])


def _reference_type(value: object) -> str | None:
    if not isinstance(value, dict):
        return None
    ref = value.get("reference")
    if isinstance(ref, str) and "/" in ref:
        parts = ref.split("/")
        # Type/id, Type/id/_history/v, or an absolute URL ending in one of those
        if len(parts) >= 4 and parts[-2] == "_history":
            return parts[-4]
        return parts[-2]
    declared = value.get("type")
    return declared if isinstance(declared, str) else None


def _same_type(hint: str | None, wanted: str) -> bool:
    return hint is not None and hint.lower() == wanted.lower()


#: one parsed step: ("child", name, choice) | ("as", type) | ("resolve", type) | ("where", field, literal)
#: | ("extension", url) | ("union", branches)
StepSpec = tuple[Any, ...]


class _Parser:
    def __init__(self, text: str, choice_elements: frozenset[str] | None) -> None:
        self.choice_elements = choice_elements
        self.tokens = _tokens(text)
        self.pos = 0
        #: the element names right below the root in every branch (a resource without any is skipped)
        self.first_names: set[str] = set()

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise UnsupportedExpression(f"expected {expected or 'more'}, got {token!r}")
        self.pos += 1
        return token

    def union(self) -> list[list[StepSpec]]:
        branches = [self.term()]
        while self.peek() == "|":
            self.take("|")
            branches.append(self.term())
        return branches

    def term(self) -> list[StepSpec]:
        if self.peek() == "(":
            self.take("(")
            inner = self.union()
            self.take(")")
            steps: list[StepSpec] = [("union", inner)]
        else:
            self.take()  # the root: a resource type name or "Resource"
            if self.peek() == "." and self.pos + 1 < len(self.tokens):
                self.first_names.add(self.tokens[self.pos + 1])
            steps = []
        while self.peek() == ".":
            self.take(".")
            steps.append(self.step())
        if self.peek() == "as":
            self.take("as")
            steps.append(("as", self.take()))
        return steps

    def step(self) -> StepSpec:
        name = self.take()
        if self.peek() != "(":
            return ("child", name, self.choice_elements is None or name in self.choice_elements)
        self.take("(")
        step: StepSpec
        if name == "as":
            step = ("as", self.take())
        elif name == "where":
            step = self.where()
        elif name == "extension":
            url = self.take()
            if not url.startswith("'"):
                raise UnsupportedExpression("extension() needs a literal url")
            step = ("extension", url[1:-1])
        else:
            raise UnsupportedExpression(f"function {name}() is not supported")
        self.take(")")
        return step

    def where(self) -> StepSpec:
        first = self.take()
        if first == "resolve":
            self.take("(")
            self.take(")")
            self.take("is")
            return ("resolve", self.take())
        self.take("=")
        literal = self.take()
        if not literal.startswith("'"):
            raise UnsupportedExpression("where() supports field='literal' only")
        return ("where", first, literal[1:-1])


def _node_steps(branch: list[StepSpec]) -> Step:
    """The Node-level evaluator of one branch (keeps choice types: the reference semantics)."""
    steps: list[Step] = []
    for spec in branch:
        kind = spec[0]
        if kind == "child":
            steps.append(_child(spec[1], spec[2]))
        elif kind == "as":
            steps.append(_as_type(spec[1]))
        elif kind == "resolve":
            steps.append(_resolves_to(spec[1]))
        elif kind == "where":
            steps.append(_field_equals(spec[1], spec[2]))
        elif kind == "extension":
            steps.append(_extension(spec[1]))
        else:
            steps.append(_union([_node_steps(inner) for inner in spec[1]]))
    return _chain(steps)


def _child(name: str, choice: bool) -> Step:
    size = len(name)

    def step(nodes: list[Node]) -> list[Node]:
        out: list[Node] = []
        for node in nodes:
            value = node.value
            if not isinstance(value, dict):
                continue
            found = value.get(name)
            if found is not None:
                if isinstance(found, list):
                    out.extend([Node(item) for item in found])
                else:
                    out.append(Node(found))
                continue
            if not choice:
                continue
            for key, item in value.items():  # a choice element: onset -> onsetDateTime / onsetPeriod …
                if len(key) > size and key.startswith(name) and key[size].isupper():
                    type_name = key[size:]
                    out.extend(
                        [Node(i, type_name) for i in item] if isinstance(item, list) else [Node(item, type_name)]
                    )
        return out

    return step


def _as_type(type_name: str) -> Step:
    return lambda nodes: [n for n in nodes if _same_type(n.type_name, type_name)]


def _resolves_to(type_name: str) -> Step:
    return lambda nodes: [n for n in nodes if _reference_type(n.value) == type_name]


def _field_equals(field: str, literal: str) -> Step:
    return lambda nodes: [n for n in nodes if isinstance(n.value, dict) and n.value.get(field) == literal]


def _extension(url: str) -> Step:
    def step(nodes: list[Node]) -> list[Node]:
        out: list[Node] = []
        for node in nodes:
            for ext in _children(node, "extension"):
                if isinstance(ext.value, dict) and ext.value.get("url") == url:
                    out.extend(_children(ext, "value"))
        return out

    return step


def _chain(steps: list[Step]) -> Step:
    def run(nodes: list[Node]) -> list[Node]:
        for step in steps:
            nodes = step(nodes)
        return nodes

    return run


def _union(branches: list[Step]) -> Step:
    return lambda nodes: [out for branch in branches for out in branch(nodes)]


ValueStep = Callable[[list[Any]], list[Any]]


def _value_steps(branch: list[StepSpec]) -> ValueStep:
    """The value-level evaluator of one branch: plain JSON values, no :class:`Node` per value.

    A choice element followed by ``as T`` is one dictionary lookup of its typed key (``value as Quantity`` reads
    ``valueQuantity``); a choice element not followed by ``as`` yields every typed key's values; any other
    ``as`` takes the typed evaluator — the same values :meth:`Expression.evaluate` reaches (a test compares them
    on every parameter).
    """
    if not _types_only_after_choices(branch):  # an ``as`` the lookup cannot answer: take the typed evaluator
        typed = _node_steps(branch)
        return lambda values: [node.value for node in typed([Node(v) for v in values])]
    steps: list[ValueStep] = []
    i = 0
    while i < len(branch):
        spec = branch[i]
        kind = spec[0]
        following = branch[i + 1] if i + 1 < len(branch) else None
        if kind == "child" and spec[2] and following is not None and following[0] == "as":
            wanted = following[1]
            steps.append(_value_typed(spec[1], spec[1] + wanted[:1].upper() + wanted[1:]))
            i += 2
            continue
        if kind == "child":
            steps.append(_value_choice(spec[1]) if spec[2] else _value_child(spec[1]))
        elif kind == "resolve":
            steps.append(_value_resolves(spec[1]))
        elif kind == "where":
            steps.append(_value_where(spec[1], spec[2]))
        elif kind == "extension":
            steps.append(_value_extension(spec[1]))
        else:
            steps.append(_value_union([_value_steps(b) for b in spec[1]]))
        i += 1
    if len(steps) == 1:
        return steps[0]

    def run(values: list[Any]) -> list[Any]:
        for step in steps:
            if not values:
                return values
            values = step(values)
        return values

    return run


def _types_only_after_choices(branch: list[StepSpec]) -> bool:
    """Whether every ``as`` of the branch directly follows a choice element (so it is a typed-key lookup)."""
    return all(
        spec[0] != "as" or (i > 0 and branch[i - 1][0] == "child" and branch[i - 1][2]) for i, spec in enumerate(branch)
    )


def _value_child(name: str) -> ValueStep:
    def step(values: list[Any]) -> list[Any]:
        out: list[Any] = []
        for value in values:
            if type(value) is dict:
                found = value.get(name)
                if found is not None:
                    if type(found) is list:
                        out += found
                    else:
                        out.append(found)
        return out

    return step


def _value_resolves(type_name: str) -> ValueStep:
    return lambda values: [v for v in values if _reference_type(v) == type_name]


def _value_where(name: str, literal: str) -> ValueStep:
    return lambda values: [v for v in values if type(v) is dict and v.get(name) == literal]


def _value_union(branches: list[ValueStep]) -> ValueStep:
    return lambda values: [out for run in branches for out in run(values)]


def _value_typed(name: str, typed_key: str) -> ValueStep:
    """``name as T`` on a choice element: the typed key's values (a plain ``name`` key has no type: nothing)."""

    def step(values: list[Any]) -> list[Any]:
        out: list[Any] = []
        for value in values:
            if type(value) is dict and name not in value:
                found = value.get(typed_key)
                if found is not None:
                    if type(found) is list:
                        out += found
                    else:
                        out.append(found)
        return out

    return step


def _value_choice(name: str) -> ValueStep:
    size = len(name)

    def step(values: list[Any]) -> list[Any]:
        out: list[Any] = []
        for value in values:
            if type(value) is not dict:
                continue
            found = value.get(name)
            if found is not None:
                if type(found) is list:
                    out += found
                else:
                    out.append(found)
                continue
            for key, item in value.items():  # a choice element: onset -> onsetDateTime / onsetPeriod …
                if len(key) > size and key.startswith(name) and key[size].isupper():
                    if type(item) is list:
                        out += item
                    else:
                        out.append(item)
        return out

    return step


def _value_extension(url: str) -> ValueStep:
    values_of = _value_choice("value")

    def step(values: list[Any]) -> list[Any]:
        out: list[Any] = []
        for value in values:
            if type(value) is not dict:
                continue
            extensions = value.get("extension")
            for ext in extensions if type(extensions) is list else [extensions]:
                if type(ext) is dict and ext.get("url") == url:
                    out += values_of([ext])
        return out

    return step


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression; call :meth:`evaluate` (typed nodes) or :meth:`values` (plain values)."""

    source: str
    _run: Step
    #: top-level elements the expression starts from (choice elements by their stem: ``value``)
    first_names: frozenset[str]
    _values: ValueStep

    def evaluate(self, resource: Mapping[str, Any]) -> list[Node]:
        """Every value the expression reaches in ``resource``, with its choice type."""
        return self._run([Node(resource)])

    def values(self, resource: Mapping[str, Any]) -> list[Any]:
        """Every value the expression reaches in ``resource`` (what index extraction needs: no types)."""
        return self._values([resource])


def compile_expression(text: str, choice_elements: frozenset[str] | None = None) -> Expression:
    """Compile ``text``; raise :class:`UnsupportedExpression` outside the subset.

    ``choice_elements`` names the elements that are ``[x]`` choices (``value``, ``onset`` …); only those are
    matched against typed keys (``valueQuantity``). None treats every name as a possible choice.

    >>> compile_expression("Patient.name.family").evaluate({"name": [{"family": "Ng"}]})[0].value
    'Ng'
    >>> e = compile_expression("(Observation.value as Quantity) | Observation.code")
    >>> [n.type_name for n in e.evaluate({"valueQuantity": {"value": 1}, "code": {}})]
    ['Quantity', None]
    >>> e.values({"valueQuantity": {"value": 1}, "valueString": "x", "code": {}})
    [{'value': 1}, {}]
    """
    parser = _Parser(text, choice_elements)
    branches = parser.union()
    if parser.peek() is not None:
        raise UnsupportedExpression(f"unexpected {parser.peek()!r} in {text!r}")
    values = [_value_steps(b) for b in branches]
    value_run = values[0] if len(values) == 1 else _value_union(values)
    return Expression(text, _union([_node_steps(b) for b in branches]), frozenset(parser.first_names), value_run)
