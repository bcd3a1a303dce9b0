"""The small FHIRPath subset the R4 search-parameter expressions of our resource types use.

Supported: paths (``Patient.name.family``), top-level unions (``a | b``), parentheses, ``x as T`` and
``x.as(T)`` on choice elements, ``where(resolve() is T)`` on references, ``where(field='literal')`` and
``extension('url')``. Anything else raises :class:`UnsupportedExpression`, so a parameter we cannot index
is never advertised. Evaluation works on parsed FHIR JSON and yields :class:`Node` values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[().|=]))")


class UnsupportedExpression(ValueError):
    """The expression uses FHIRPath beyond the subset implemented here."""


@dataclass(frozen=True, slots=True)
class Node:
    """One value an expression reached: the JSON value and, for a choice element, its type (``Quantity``)."""

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
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

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
            return _child(name)
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


def _child(name: str) -> Step:
    return lambda nodes: [c for n in nodes for c in _children(n, name)]


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

    def evaluate(self, resource: dict[str, object]) -> list[Node]:
        """Every value the expression reaches in ``resource``."""
        return self._run([Node(resource)])


def compile_expression(text: str) -> Expression:
    """Compile ``text``; raise :class:`UnsupportedExpression` outside the subset.

    >>> compile_expression("Patient.name.family").evaluate({"name": [{"family": "Ng"}]})[0].value
    'Ng'
    >>> e = compile_expression("(Observation.value as Quantity) | Observation.code")
    >>> [n.type_name for n in e.evaluate({"valueQuantity": {"value": 1}, "code": {}})]
    ['Quantity', None]
    """
    parser = _Parser(text)
    branches = parser.union()
    if parser.peek() is not None:
        raise UnsupportedExpression(f"unexpected {parser.peek()!r} in {text!r}")
    return Expression(text, _union(branches))
