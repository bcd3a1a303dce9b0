"""Validation of produced resources: the FHIR R4 model (fhir.resources R4B) plus the UK Core rules.

``fhir.resources`` validation costs 60–100× a JSON parse, and mapped resources come in few shapes (one
mapping file produces the same structure again and again). So the validator computes each resource's
*shape* — its element names, list lengths, value types, resourceType — and validates each new shape once with
the full model. Everything the model checks that depends on shape only (unknown elements, required
elements, cardinality, choice types, nulls in lists, Python value types) is then settled for every resource
of that shape. What still varies is the primitive values, and those are checked one by one with the *same*
pydantic validator the model uses for that element (taken from the model's field annotation), memoising values
already seen valid. ``tests/unit/mapping/test_validation_differential.py`` proves fast and full agree.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, Final

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from bcconnect.fhir.ukcore import ukcore_problems

_MEMO_LIMIT: Final = 100_000
_MISSING: Final[Any] = object()
_SHAPE_LIMIT: Final = 20_000

Shape = tuple[Any, ...]


def _walk_dict(value: dict[str, Any], sig: list[Any], leaves: list[Any]) -> None:
    # Hot loop (every resource, every node): scalars are handled inline, recursion only for containers.
    add, leaf = sig.append, leaves.append
    add("{")
    for key, item in value.items():
        add(key)
        kind = type(item)
        if kind is dict:
            _walk_dict(item, sig, leaves)
        elif kind is list:
            _walk_list(item, sig, leaves)
        else:
            add(kind)
            leaf(item)
    add("}")


def _walk_list(value: list[Any], sig: list[Any], leaves: list[Any]) -> None:
    add, leaf = sig.append, leaves.append
    add(len(value))
    for item in value:
        kind = type(item)
        if kind is dict:
            _walk_dict(item, sig, leaves)
        elif kind is list:
            _walk_list(item, sig, leaves)
        else:
            add(kind)
            leaf(item)


def shape_of(resource: dict[str, Any]) -> tuple[Shape, list[Any]]:
    """The structural signature of a resource and its primitive values in walk order.

    ``resourceType`` is a leaf like any other, but its value picks the model, so it is part of the shape.
    """
    sig: list[Any] = [resource.get("resourceType")]
    leaves: list[Any] = []
    _walk_dict(resource, sig, leaves)
    return tuple(sig), leaves


@cache
def _model(resource_type: str) -> type[FHIRAbstractModel] | None:
    try:
        model: type[FHIRAbstractModel] = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return None
    return model


@cache
def _fields(model: type[FHIRAbstractModel]) -> dict[str, Any]:
    return {(info.alias or name): info.annotation for name, info in model.model_fields.items()}


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] and List[...] down to the element type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, list, typing.List, types.UnionType):  # noqa: UP006
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


class _Checker:
    """The model's own pydantic validator for one primitive element, with a memo of values seen valid."""

    __slots__ = ("adapter", "good")

    def __init__(self, annotation: Any) -> None:
        self.adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        self.good: set[Any] = set()

    def problem(self, value: Any) -> str | None:
        key = (type(value), value)
        if key in self.good:
            return None
        try:
            self.adapter.validate_python(value)
        except PydanticValidationError as exc:
            return exc.errors()[0]["msg"]
        if len(self.good) > _MEMO_LIMIT:
            self.good.clear()
        self.good.add(key)
        return None


_CHECKERS: dict[str, _Checker] = {}

#: Stands for "no per-value check known": a shape holding one is validated in full every time.
ALWAYS_FULL: Final = "always-full"


def _checker(annotation: Any) -> _Checker:
    key = repr(annotation)
    found = _CHECKERS.get(key)
    if found is None:
        found = _CHECKERS[key] = _Checker(annotation)
    return found


def _leaf_checkers(
    value: Any, model: type[FHIRAbstractModel] | None, leaf: _Checker | None, path: str, out: list[Any]
) -> None:
    """Append, per leaf in walk order, ``(path, checker)``; ``leaf`` checks primitives of a list field."""
    if isinstance(value, dict):
        fields = _fields(model) if model is not None else {}
        for key, item in value.items():
            if key == "resourceType":
                out.append((f"{path}.resourceType", None))  # part of the shape: checked by the full validation
                continue
            sub = _unwrap(fields[key]) if key in fields else None
            sub_model = None
            if isinstance(sub, type) and issubclass(sub, FhirBase):
                sub_model = sub.get_model_klass()
            elif isinstance(sub, type) and issubclass(sub, FHIRAbstractModel):
                sub_model = sub
            checker = _checker(sub) if sub is not None and sub_model is None else None
            if isinstance(item, dict | list):
                _leaf_checkers(item, sub_model, checker, f"{path}.{key}", out)
            elif item is None:
                out.append((f"{path}.{key}", None))  # null is in the shape, and the model judged it already
            else:
                # a primitive the model types could not be followed to: this shape always gets full validation
                out.append((f"{path}.{key}", checker if checker is not None else ALWAYS_FULL))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict | list):
                _leaf_checkers(item, model, leaf, f"{path}[{i}]", out)
            elif item is None:
                out.append((f"{path}[{i}]", None))
            else:
                out.append((f"{path}[{i}]", leaf if leaf is not None else ALWAYS_FULL))


def full_model_problems(resource: dict[str, Any]) -> list[str]:
    """Every problem fhir.resources (R4B) finds in ``resource`` — the reference the fast path must match."""
    model = _model(str(resource.get("resourceType")))
    if model is None:
        return [f"resourceType: {resource.get('resourceType')!r} is not a FHIR resource type"]
    try:
        model.model_validate(resource)
    except PydanticValidationError as exc:
        return [f"{'.'.join(str(p) for p in err['loc']) or '(resource)'}: {err['msg']}" for err in exc.errors()]
    except (ValueError, TypeError) as exc:  # some model validators raise plain errors
        return [f"(resource): {exc}"]
    return []


class Validator:
    """Validates produced resources against the R4 model and UK Core; ``fast`` uses the shape cache."""

    def __init__(self, *, fast: bool = True) -> None:
        self.fast = fast
        self._shapes: dict[Shape, list[tuple[str, Any]] | None] = {}
        self.full_validations = 0

    def model_problems(self, resource: dict[str, Any]) -> list[str]:
        """Problems against the R4 model (shape cached when ``fast``)."""
        if not self.fast:
            self.full_validations += 1
            return full_model_problems(resource)
        shape, leaves = shape_of(resource)
        checkers = self._shapes.get(shape, _MISSING)
        if checkers is None:  # a shape we cannot check value by value
            self.full_validations += 1
            return full_model_problems(resource)
        if checkers is _MISSING:
            self.full_validations += 1
            problems = full_model_problems(resource)
            if problems:
                return problems
            checkers = []
            rtype = str(resource["resourceType"])
            _leaf_checkers(resource, _model(rtype), None, rtype, checkers)
            if any(checker is ALWAYS_FULL for _, checker in checkers):
                checkers = None
            if len(self._shapes) > _SHAPE_LIMIT:
                self._shapes.clear()
            self._shapes[shape] = checkers
            return []
        out: list[str] = []
        assert isinstance(checkers, list)
        for (path, checker), value in zip(checkers, leaves, strict=True):
            # the memo test inline: most values (systems, codes, statuses) were seen valid before
            if checker is not None and (type(value), value) not in checker.good:
                problem = checker.problem(value)
                if problem is not None:
                    out.append(f"{path}: {problem}")
        return out

    def problems(self, resource: dict[str, Any]) -> list[str]:
        """Every R4 model and UK Core problem of ``resource`` (empty when valid)."""
        return self.model_problems(resource) + ukcore_problems(resource)


ValidateFn = Callable[[dict[str, Any]], list[str]]
