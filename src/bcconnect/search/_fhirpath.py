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

    def union(self) -> list[Step]:
        branches = [self.term()]
        while self.peek() == "|":
            self.take("|")
            branches.append(self.term())
        return [s for branch in branches for s in [_chain(branch)]]

    def term(self) -> list[Step]:
        if self.peek() == "(":
            self.take("(")
            inner = self.union()
            self.take(")")
            steps: list[Step] = [_union(inner)]
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
            steps.append(_as_type(self.take()))
        return steps

    def step(self) -> Step:
        name = self.take()
        if self.peek() != "(":
            return _child(name, self.choice_elements is None or name in self.choice_elements)
        self.take("(")
        if name == "as":
            step = _as_type(self.take())
        elif name == "where":
            step = self.where()
        elif name == "extension":
            url = self.take()
            if not url.startswith("'"):
                raise UnsupportedExpression("extension() needs a literal url")
            step = _extension(url[1:-1])
        else:
            raise UnsupportedExpression(f"function {name}() is not supported")
        self.take(")")
        return step

    def where(self) -> Step:
        first = self.take()
        if first == "resolve":
            self.take("(")
            self.take(")")
            self.take("is")
            return _resolves_to(self.take())
        self.take("=")
        literal = self.take()
        if not literal.startswith("'"):
            raise UnsupportedExpression("where() supports field='literal' only")
        return _field_equals(first, literal[1:-1])


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


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression; call :meth:`evaluate` with a parsed resource."""

    source: str
    _run: Step
    #: top-level elements the expression starts from (choice elements by their stem: ``value``)
    first_names: frozenset[str]

    def evaluate(self, resource: Mapping[str, Any]) -> list[Node]:
        """Every value the expression reaches in ``resource``."""
        return self._run([Node(resource)])


def compile_expression(text: str, choice_elements: frozenset[str] | None = None) -> Expression:
    """Compile ``text``; raise :class:`UnsupportedExpression` outside the subset.

    ``choice_elements`` names the elements that are ``[x]`` choices (``value``, ``onset`` …); only those are
    matched against typed keys (``valueQuantity``). None treats every name as a possible choice.

    >>> compile_expression("Patient.name.family").evaluate({"name": [{"family": "Ng"}]})[0].value
    'Ng'
    >>> e = compile_expression("(Observation.value as Quantity) | Observation.code")
    >>> [n.type_name for n in e.evaluate({"valueQuantity": {"value": 1}, "code": {}})]
    ['Quantity', None]
    """
    parser = _Parser(text, choice_elements)
    branches = parser.union()
    if parser.peek() is not None:
        raise UnsupportedExpression(f"unexpected {parser.peek()!r} in {text!r}")
    return Expression(text, _union(branches), frozenset(parser.first_names))
