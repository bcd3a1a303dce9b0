"""Source paths (where a value is read) and target paths (where it is written) in mapping files.

Source paths over JSON (vendor JSON and FHIR sources) follow FHIRPath's collection idea: every step yields a
list, lists met on the way are flattened, ``[n]`` picks the n-th item of the collection so far, ``[*]`` keeps
all, ``[key=value]`` / ``[key!=value]`` filter items whose ``key`` equals (or not) a string. A leading
``$name`` reads a context variable (``$ods``, ``$source_key`` …), a leading ``^.`` reads from the record's
root while inside ``each``. Target paths are dotted element names with ``[n]`` (that index), ``[+]`` (append
a new item) or ``[*]`` (write every value as a list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

_SEGMENT = re.compile(r"([A-Za-z_$^][A-Za-z0-9_\-]*)((?:\[[^\]]*\])*)")
_BRACKET = re.compile(r"\[([^\]]*)\]")

KEY: Final = 0
INDEX: Final = 1
FILTER_EQ: Final = 2
FILTER_NE: Final = 3
ALL: Final = 4


class PathSyntaxError(ValueError):
    """A path in a mapping file is not well formed (the message says what was expected)."""


def _split_dots(text: str) -> list[str]:
    """Split on dots outside brackets (filter values are often URLs with dots)."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "." and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


@dataclass(frozen=True, slots=True)
class SourcePath:
    """A compiled JSON source path; ``select`` returns every value it denotes (maybe none)."""

    text: str
    variable: str | None
    from_root: bool
    steps: tuple[tuple[int, Any, Any], ...]
    simple_keys: tuple[str, ...] | None

    def select(self, scope: Any, variables: dict[str, str] | None = None) -> list[Any]:
        """Every value at this path below ``scope`` (a dict, list or scalar), flattened. A filter value
        ``$name`` compares with that context variable (no match when it is unset)."""
        keys = self.simple_keys
        if keys is not None:
            cur: Any = scope
            for key in keys:
                if isinstance(cur, dict):
                    cur = cur.get(key)
                    if cur is None:
                        return []
                else:
                    return _select(self.steps, [scope], variables)
            if isinstance(cur, list):
                return cur
            return [cur]
        return _select(self.steps, scope if isinstance(scope, list) else [scope], variables)


def _select(
    steps: tuple[tuple[int, Any, Any], ...], start: list[Any], variables: dict[str, str] | None = None
) -> list[Any]:
    cur = start
    for kind, arg, arg2 in steps:
        nxt: list[Any] = []
        if kind in (FILTER_EQ, FILTER_NE) and isinstance(arg2, str) and arg2.startswith("$"):
            bound = (variables or {}).get(arg2[1:])
            if bound is None:  # nothing equals an unset variable
                if kind == FILTER_EQ:
                    return []
                continue
            arg2 = bound
        if kind == KEY:
            for item in cur:
                if isinstance(item, dict):
                    val = item.get(arg)
                    if val is None:
                        continue
                    if isinstance(val, list):
                        nxt.extend(val)
                    else:
                        nxt.append(val)
        elif kind == INDEX:
            if -len(cur) <= arg < len(cur):
                nxt.append(cur[arg])
        elif kind == FILTER_EQ:
            nxt = [i for i in cur if isinstance(i, dict) and str(i.get(arg)) == arg2]
        elif kind == FILTER_NE:
            nxt = [i for i in cur if isinstance(i, dict) and str(i.get(arg)) != arg2]
        else:
            nxt = cur
        cur = nxt
        if not cur:
            return cur
    return cur


def compile_source(text: str) -> SourcePath:
    """Compile a JSON source path; raises :class:`PathSyntaxError` saying what was expected."""
    if not isinstance(text, str) or not text.strip():
        raise PathSyntaxError("expected a non-empty path such as 'name.given' or 'identifier[system=…].value'")
    text = text.strip()
    variable = None
    from_root = False
    parts = _split_dots(text)
    if parts[0].startswith("$"):
        variable = parts[0][1:]
        if not variable.replace("_", "").isalnum():
            raise PathSyntaxError(f"expected a variable name after '$', got {parts[0]!r}")
        parts = parts[1:]
    elif parts[0] == "^":
        from_root = True
        parts = parts[1:]
    steps: list[tuple[int, Any, Any]] = []
    for part in parts:
        match = _SEGMENT.fullmatch(part)
        if match is None:
            raise PathSyntaxError(f"expected an element name with optional [n], [*] or [key=value], got {part!r}")
        steps.append((KEY, match.group(1), None))
        for inner in _BRACKET.findall(match.group(2)):
            steps.append(_bracket_step(inner, part))
    simple = tuple(a for k, a, _ in steps) if all(k == KEY for k, _, _ in steps) else None
    return SourcePath(text, variable, from_root, tuple(steps), simple)


def _bracket_step(inner: str, part: str) -> tuple[int, Any, Any]:
    inner = inner.strip()
    if inner == "*":
        return (ALL, None, None)
    if inner.lstrip("-").isdigit():
        return (INDEX, int(inner), None)
    if inner.startswith(("=", "!=")) or not inner:
        raise PathSyntaxError(f"expected [n], [*] or [key=value] with a key in {part!r}, got [{inner}]")
    if "!=" in inner:
        key, _, value = inner.partition("!=")
        return (FILTER_NE, key.strip(), value.strip())
    if "=" in inner:
        key, _, value = inner.partition("=")
        return (FILTER_EQ, key.strip(), value.strip())
    raise PathSyntaxError(f"expected [n], [*] or [key=value] in {part!r}, got [{inner}]")


# --- target paths -----------------------------------------------------------------------------------------
APPEND: Final = "+"
EVERY: Final = "*"

_TARGET_SEGMENT = re.compile(r"([A-Za-z][A-Za-z0-9_]*)(?:\[(\d+|\+|\*)\])?")


@dataclass(frozen=True, slots=True)
class TargetPath:
    """A compiled target path: ``(element, selector)`` steps where selector is None, an int, '+' or '*'."""

    text: str
    steps: tuple[tuple[str, int | str | None], ...]
    #: True when the last step writes every value (``[*]``)
    many: bool = False
    #: True when the last step appends an item (``[+]``)
    appends: bool = False

    def assign(self, obj: dict[str, Any], value: Any) -> None:
        """Write ``value`` at this path inside ``obj``, creating objects and lists on the way."""
        if len(self.steps) == 1 and self.steps[0][1] is None:
            obj[self.steps[0][0]] = value  # the common case: one plain element name
            return
        cur: Any = obj
        last = len(self.steps) - 1
        for i, (name, sel) in enumerate(self.steps):
            if i == last:
                _write_last(cur, name, sel, value)
                return
            if sel is None:
                nxt = cur.get(name)
                if nxt is None:
                    nxt = cur[name] = {}
                cur = nxt
            else:
                seq = cur.setdefault(name, [])
                if sel in (APPEND, EVERY):
                    seq.append({})
                    cur = seq[-1]
                else:
                    assert isinstance(sel, int)
                    while len(seq) <= sel:
                        seq.append({})
                    cur = seq[sel]


def _write_last(cur: dict[str, Any], name: str, sel: int | str | None, value: Any) -> None:
    if sel is None:
        cur[name] = value
    elif sel == APPEND:
        cur.setdefault(name, []).append(value)
    elif sel == EVERY:
        seq = cur.setdefault(name, [])
        seq.extend(value if isinstance(value, list) else [value])
    else:
        assert isinstance(sel, int)
        seq = cur.setdefault(name, [])
        while len(seq) <= sel:
            seq.append(None)
        seq[sel] = value


def compile_target(text: str) -> TargetPath:
    """Compile a target path such as ``name[0].given[*]``; raises :class:`PathSyntaxError`."""
    if not isinstance(text, str) or not text.strip():
        raise PathSyntaxError("expected a target path such as 'name[0].family' or 'identifier[+]'")
    steps: list[tuple[str, int | str | None]] = []
    for part in text.strip().split("."):
        match = _TARGET_SEGMENT.fullmatch(part)
        if match is None:
            raise PathSyntaxError(f"expected an element name with optional [n], [+] or [*], got {part!r}")
        sel = match.group(2)
        steps.append((match.group(1), int(sel) if sel is not None and sel.isdigit() else sel))
    return TargetPath(text.strip(), tuple(steps), steps[-1][1] == EVERY, steps[-1][1] == APPEND)
