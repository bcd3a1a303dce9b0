"""YAML loading that keeps the line of every node, so a definition problem can name its line.

PyYAML's composer gives each node a start mark; we build plain containers from the nodes and remember the
line of every mapping, sequence and mapping key. Only the YAML "safe" scalar types are produced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bcconnect.errors import DefinitionProblem


class LocDict(dict[str, Any]):
    """A mapping from a YAML file that knows its own line and the line of each key (1-based)."""

    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        """The line of ``key`` in the file, or the mapping's own line when the key is absent."""
        return self.key_lines.get(key, self.line)


class LocList(list[Any]):
    """A sequence from a YAML file that knows its line and the line of each item."""

    line: int
    item_lines: list[int]


_SAFE = yaml.SafeLoader


def _build(node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = LocDict()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = _build(key_node, loader)
            out[str(key)] = _build(value_node, loader)
            out.key_lines[str(key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = LocList(_build(item, loader) for item in node.value)
        seq.line = node.start_mark.line + 1
        seq.item_lines = [item.start_mark.line + 1 for item in node.value]
        return seq
    return loader.construct_object(node, deep=True)


def load_yaml(path: Path, problems: list[DefinitionProblem]) -> Any:
    """Load one YAML file with line numbers; a syntax error becomes a problem and the result is None."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(DefinitionProblem(str(path), None, "(file)", f"cannot be read: {exc.strerror}"))
        return None
    loader = _SAFE(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _build(node, loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        hint = ""
        if "alias" in str(exc) or "flow" in str(exc):
            hint = ' (hint: quote paths with [*], [+] or [n] inside {…} flow mappings: target: "name[*]")'
        problems.append(DefinitionProblem(str(path), line, "(syntax)", f"not valid YAML{hint}: {exc}"))
        return None
    finally:
        loader.dispose()


def line_of(value: Any, default: int | None = None) -> int | None:
    """The line a loaded value started on, when it is a container from :func:`load_yaml`."""
    return getattr(value, "line", default)
