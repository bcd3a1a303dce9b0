"""The checks catalogue as Markdown (``conformance/CHECKS.md`` is this text; a test keeps them equal)."""

from __future__ import annotations

from bcconnect.conformance.packs import PACKS


def catalogue_markdown() -> str:
    """Every pack and check: id, severity, title and specification reference."""
    lines = [
        "# Conformance checks",
        "",
        "Generated from the packs (`bcconnect conformance list` prints the same); a test fails when this file is "
        "out of date.",
        "",
    ]
    for pack in PACKS.values():
        lines += [
            f"## `{pack.name}` — {pack.title}",
            "",
            pack.description,
            "",
            "| id | severity | check | specification |",
            "| --- | --- | --- | --- |",
        ]
        for c in pack.checks:
            lines.append(f"| `{c.id}` | {c.severity.value} | {c.title} | [{c.spec.section}]({c.spec.url}) |")
        lines.append("")
    return "\n".join(lines)
