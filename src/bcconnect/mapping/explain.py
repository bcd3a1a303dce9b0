"""``bcconnect mappings explain``: for each output field, the rule that wrote it and the source value it read."""

from __future__ import annotations

from typing import Any

import orjson

from bcconnect.mapping.engine import MappingResult


def _show(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def explain_lines(result: MappingResult) -> list[str]:
    """Human-readable lines: one block per produced resource, one line per written field."""
    out: list[str] = [f"mapping file: {result.mapping_file}"]
    for resource, trace in zip(result.resources, result.trace, strict=False):
        out.append("")
        out.append(f"{resource['resourceType']}/{resource['id']}")
        width = max((len(e.target) for e in trace), default=10)
        for entry in trace:
            source = "" if entry.source is None else f"  ← {entry.source} = {_show(entry.source_value, 40)}"
            out.append(f"  {entry.target.ljust(width)}  {_show(entry.value)}")
            out.append(f"  {''.ljust(width)}    by {entry.rule}{source}")
        added = [k for k in ("meta.profile", "meta.source", "meta.tag") if k]
        out.append(f"  {'(engine)'.ljust(width)}  id (uuid5 of source system|type|key), {', '.join(added)}")
    return out
